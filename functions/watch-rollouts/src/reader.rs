//! Another account's services, read through that account's read-only role:
//! pull, never push. A downstream that follows `<account>:<cluster>/<service>`
//! assumes `arn:aws:iam::<account>:role/<READER_ROLE_NAME>` (the upstream
//! stack's `ReaderRole`, which trusts only the listed accounts' watch-rollouts
//! and grants ECS Describe/List, the state table's reads and two SSM
//! parameters), and reads the upstream with those credentials; it writes
//! nothing there. The upstream stack says where its memory is in the parameter
//! `/nightshift/reader/<role name>`: `{"stateTable": "...", "checksPrefix": "..."}`.

use std::sync::Arc;

use nightshift::signed::Credentials;
use nightshift::signed::SignedHttp;
use nightshift::state::StateTable;
use serde::Deserialize;

/// `READER_ROLE_NAME`'s default, and the template's `ReaderRoleName`'s.
pub const DEFAULT_ROLE_NAME: &str = "nightshift-reader";
/// Where an upstream account's stack describes itself to its readers.
pub const DESCRIPTION_PREFIX: &str = "/nightshift/reader/";

/// An upstream account, as its reader sees it.
pub struct Reader {
    pub account: String,
    pub ecs: aws_sdk_ecs::Client,
    pub signed: Arc<SignedHttp>,
    pub state: StateTable,
    pub checks_prefix: String,
}

/// The upstream stack's description of itself (`/nightshift/reader/<role name>`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Description {
    pub state_table: String,
    pub checks_prefix: String,
}

/// The role to assume in `account`.
pub fn role_arn(account: &str, role_name: &str, region: &str) -> String {
    let partition = match region {
        r if r.starts_with("cn-") => "aws-cn",
        r if r.starts_with("us-gov-") => "aws-us-gov",
        _ => "aws",
    };
    format!("arn:{partition}:iam::{account}:role/{role_name}")
}

/// `application/x-www-form-urlencoded`: every byte but unreserved ones as `%XX`.
fn form(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The text of `<name>…</name>` in an XML answer.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].trim())
}

/// The credentials of STS's AssumeRole answer (query protocol, XML); `Err` says what was missing.
pub fn credentials(xml: &str) -> Result<Credentials, String> {
    let field = |name: &str| element(xml, name).map(str::to_owned).ok_or(format!("AssumeRole's answer has no {name}"));
    Ok(Credentials::new(
        field("AccessKeyId")?,
        field("SecretAccessKey")?,
        Some(field("SessionToken")?),
        None,
        "nightshift-reader",
    ))
}

/// STS's error code and message in an XML error answer.
fn sts_error(status: u16, xml: &str) -> String {
    match (element(xml, "Code"), element(xml, "Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => format!("STS answered {status}"),
    }
}

/// Assumes `role_arn` (15 minutes: a run needs no more).
pub async fn assume(signed: &SignedHttp, role_arn: &str) -> Result<Credentials, String> {
    let body = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=nightshift-watch-rollouts&DurationSeconds=900",
        form(role_arn)
    );
    let headers = [("content-type", "application/x-www-form-urlencoded; charset=utf-8")];
    let answer = signed.post_json("sts", "/", &headers, body).await?;
    let text = String::from_utf8_lossy(&answer.body);
    if !(200..300).contains(&answer.status) {
        return Err(format!("STS AssumeRole of {role_arn} failed: {}", sts_error(answer.status, &text)));
    }
    credentials(&text)
}

/// Assumes the reader role in `account` and reads its description: the upstream, ready to read.
pub async fn open(signed: &SignedHttp, account: &str, role_name: &str) -> Result<Reader, String> {
    let region = signed.sdk().region().map(ToString::to_string).unwrap_or_default();
    let role = role_arn(account, role_name, &region);
    let as_reader = Arc::new(signed.with_credentials(assume(signed, &role).await?));
    let parameter = format!("{DESCRIPTION_PREFIX}{role_name}");
    let (text, _) = as_reader
        .get_parameter(&parameter)
        .await
        .map_err(|why| format!("the upstream account {account} has no readable {parameter}: {why}"))?;
    let described: Description = serde_json::from_str(&text)
        .map_err(|e| format!("{parameter} in {account} is not {{\"stateTable\", \"checksPrefix\"}}: {e}"))?;
    Ok(Reader {
        account: account.to_owned(),
        ecs: nightshift::aws::ecs_client(as_reader.sdk()),
        state: StateTable::new(as_reader.clone(), &described.state_table),
        checks_prefix: described.checks_prefix,
        signed: as_reader,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credentials_come_from_assume_roles_answer_and_an_error_says_why() {
        let answer = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
          <AssumeRoleResult><Credentials>
            <AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>secret</SecretAccessKey>
            <SessionToken>token</SessionToken><Expiration>2026-12-05T22:00:00Z</Expiration>
          </Credentials></AssumeRoleResult></AssumeRoleResponse>"#;
        let found = credentials(answer).unwrap();
        assert_eq!((found.access_key_id(), found.secret_access_key()), ("ASIAEXAMPLE", "secret"));
        assert_eq!(found.session_token(), Some("token"));
        assert_eq!(credentials("<x/>").unwrap_err(), "AssumeRole's answer has no AccessKeyId");
        let refused = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not trusted</Message></Error></ErrorResponse>";
        assert_eq!(sts_error(403, refused), "AccessDenied: not trusted");
        assert_eq!(sts_error(500, ""), "STS answered 500");
    }

    #[test]
    fn the_role_is_named_in_the_regions_partition_and_the_form_is_encoded() {
        assert_eq!(
            role_arn("210987654321", "nightshift-reader", "eu-west-1"),
            "arn:aws:iam::210987654321:role/nightshift-reader"
        );
        assert_eq!(role_arn("210987654321", "r", "cn-north-1"), "arn:aws-cn:iam::210987654321:role/r");
        assert_eq!(form("arn:aws:iam::1:role/a b"), "arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fa%20b");
    }
}
