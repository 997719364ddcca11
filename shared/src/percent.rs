//! Percent-decoding, as S3 notifications encode keys and did:web encodes paths.

/// Decodes `%XX` escapes, and `+` as a space when `plus_is_space` (form
/// encoding, as S3 notifications use). The error says what is wrong.
pub fn decode(encoded: &str, plus_is_space: bool) -> Result<String, String> {
    decode_escaped(encoded, '%', plus_is_space)
}

/// Decodes `<escape>XX` escapes (two hex digits, one byte each), and `+` as a
/// space when `plus_is_space`; `escape` is an ASCII character (`%`, or `@`
/// where a `%` may not stand, as in an ECS tag value).
pub fn decode_escaped(encoded: &str, escape: char, plus_is_space: bool) -> Result<String, String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b if char::from(b) == escape => {
                let hex = encoded.get(i + 1..i + 3).ok_or_else(|| format!("a {escape} without two hex digits"))?;
                // from_str_radix alone would take a sign: `%+F`.
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!("{escape}{hex} is not hex"));
                }
                out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("{escape}{hex} is not hex"))?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "it does not decode to UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_decode_and_plus_only_when_asked() {
        assert_eq!(decode("caf%C3%A9+au+lait", true).unwrap(), "café au lait");
        assert_eq!(decode("a+b%2Fc", false).unwrap(), "a+b/c");
        assert_eq!(decode("bad%zz", true).unwrap_err(), "%zz is not hex");
        assert_eq!(decode("sign%+F", true).unwrap_err(), "%+F is not hex");
        assert_eq!(decode("sign%-1", false).unwrap_err(), "%-1 is not hex");
        assert_eq!(decode("cut%2", true).unwrap_err(), "a % without two hex digits");
        assert_eq!(decode("%FF", false).unwrap_err(), "it does not decode to UTF-8");
        assert_eq!(decode_escaped("glob:RC_@2A", '@', false).unwrap(), "glob:RC_*");
        assert_eq!(decode_escaped("a@+1", '@', false).unwrap_err(), "@+1 is not hex");
    }
}
