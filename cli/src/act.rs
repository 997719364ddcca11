//! The commands that change something: each invokes a deployed function with
//! its manual event (docs/cli.md), prints what it did (or, `--dry-run`, would
//! do), and exits non-zero when it did not do what was asked.

use std::process::ExitCode;

use aws_config::SdkConfig;
use nightshift::rollout::ServiceId;
use serde_json::{Value, json};

use crate::cloud::{self, Failure, Invoked, Stack};
use crate::status::{self, Paint};
use crate::{Acting, Waiting};

pub struct Context {
    pub config: SdkConfig,
    pub stack: Stack,
    pub paint: Paint,
}

/// `--for`: `90m`, `2h`, `1d`, `1h30m`, or plain minutes; in minutes.
pub fn minutes(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let wrong = || format!("{text:?} is not a duration like 90m, 2h, 1d or 1h30m");
    if let Ok(plain) = text.parse::<i64>() {
        return if plain > 0 { Ok(plain) } else { Err(wrong()) };
    }
    let mut total = 0i64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: i64 = number.parse().map_err(|_| wrong())?;
        number.clear();
        total += match c {
            'm' => n,
            'h' => n * 60,
            'd' => n * 1440,
            _ => return Err(wrong()),
        };
    }
    if !number.is_empty() || total <= 0 {
        return Err(wrong());
    }
    Ok(total)
}

/// `<cluster>/<service>`, checked before anything is sent.
fn service_id(text: &str) -> Result<ServiceId, Failure> {
    ServiceId::parse(text).map_err(|why| Failure::new(format!("{why} (as status shows it)")))
}

/// Invokes the function the stack's `output` names with `event` (and `dryRun`);
/// the report, or the function's error as a failure that says what to do.
async fn send(ctx: &Context, output: &str, mut event: Value, acting: &Acting) -> Result<Value, Failure> {
    let function = ctx.stack.output(output)?;
    if acting.dry_run {
        event["dryRun"] = json!(true);
    }
    match cloud::invoke(&ctx.config, function, &event, false).await? {
        Invoked::Report(report) => {
            if acting.json {
                println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            }
            Ok(report)
        }
        Invoked::Failed { error_type, message } => Err(Failure::new(format!(
            "{function} refused it ({error_type}): {message}\n(its logs say more: aws logs tail /aws/lambda/{function})"
        ))),
        Invoked::Started => Ok(Value::Null),
    }
}

fn say(acting: &Acting, line: impl AsRef<str>) {
    if !acting.json {
        println!("{}", line.as_ref());
    }
}

fn exit(ok: bool) -> ExitCode {
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn text<'a>(value: &'a Value, name: &str) -> &'a str {
    value.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// One rollout started (or, dry, would start): its lines.
fn started(deployed: &Value, dry: bool) -> Vec<String> {
    let id = format!("{}/{}", text(deployed, "cluster"), text(deployed, "service"));
    let mut lines = vec![format!("{} {id}:", if dry { "would roll out" } else { "rolling out" })];
    for change in deployed["images"].as_array().into_iter().flatten() {
        lines.push(format!("  {}: {} -> {}", text(change, "container"), text(change, "from"), text(change, "to")));
    }
    let new = deployed["new_task_definition"].as_str().unwrap_or("(a new revision)");
    lines.push(format!("  revision {} -> {new}", text(deployed, "old_task_definition")));
    if let Some(id) = deployed["codedeploy"]["deployment_id"].as_str() {
        lines.push(format!("  CodeDeploy deployment {id}"));
    }
    lines
}

/// A rollout started (or, dry, that would start): its lines, then with `--wait` its end.
async fn rolled(ctx: &Context, deployed: &Value, acting: &Acting, waiting: &Waiting) -> Result<ExitCode, Failure> {
    for line in started(deployed, acting.dry_run) {
        say(acting, line);
    }
    Ok(exit(follow(ctx, deployed, acting, waiting).await?))
}

/// After a rollout started: `--wait` follows it to its end.
async fn follow(ctx: &Context, deployed: &Value, acting: &Acting, waiting: &Waiting) -> Result<bool, Failure> {
    if !waiting.wait || acting.dry_run {
        return Ok(true);
    }
    let Some(new) = deployed["new_task_definition"].as_str() else { return Ok(true) };
    let (cluster, service) = (text(deployed, "cluster"), text(deployed, "service"));
    crate::wait::rollout(&ctx.config, cluster, service, new, waiting.timeout, ctx.paint).await
}

pub async fn deploy(
    ctx: &Context,
    service: &str,
    image: &str,
    acting: &Acting,
    waiting: &Waiting,
) -> Result<ExitCode, Failure> {
    let ServiceId { cluster, service: name } = service_id(service)?;
    let by = cloud::caller(&ctx.config).await?;
    let event = json!({"deploy": {"service": service, "image": image, "by": by}});
    let report = send(ctx, cloud::DEPLOY_ON_PUSH, event, acting).await?;
    let mine = |list: &str| {
        report[list]
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| text(d, "cluster") == cluster && text(d, "service") == name)
            .cloned()
    };
    if let Some(why) = report["ignored"].as_str() {
        say(acting, format!("nothing deployed: {why}"));
        return Ok(exit(false));
    }
    if let Some(deployed) = mine("deployed") {
        return rolled(ctx, &deployed, acting, waiting).await;
    }
    let (what, not) = match (mine("failed"), mine("skipped")) {
        (Some(failed), _) => ("failed", failed),
        (None, Some(skipped)) => ("not deployed", skipped),
        (None, None) => {
            ("not deployed", json!({"reason": "the function did not consider it (see its report: --json)"}))
        }
    };
    say(acting, format!("{service}: {what}: {}", text(&not, "reason")));
    Ok(exit(false))
}

pub async fn rollback(
    ctx: &Context,
    service: &str,
    reason: Option<&str>,
    acting: &Acting,
    waiting: &Waiting,
) -> Result<ExitCode, Failure> {
    service_id(service)?;
    let by = cloud::caller(&ctx.config).await?;
    let mut asked = json!({"service": service, "by": by});
    if let Some(reason) = reason {
        asked["reason"] = json!(reason);
    }
    let report = send(ctx, cloud::WATCH_ROLLOUTS, json!({"rollback": asked}), acting).await?;
    let done = &report["by_hand"];
    match text(done, "result") {
        "rolled back" => {
            let digests: Vec<String> = done["digests"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d.as_str())
                .map(status::short)
                .collect();
            if !digests.is_empty() {
                let verb = if acting.dry_run { "would quarantine" } else { "quarantined" };
                say(acting, format!("{verb} on {service}: {}", digests.join(", ")));
            }
            let verb = if acting.dry_run { "would hold" } else { "held" };
            say(acting, format!("{verb} {service} until released (nightshift release {service})"));
            let deployed = done["deployed"].clone();
            rolled(ctx, &deployed, acting, waiting).await
        }
        "already" => {
            say(acting, format!("{service}: nothing to roll back: {}", text(done, "why")));
            Ok(ExitCode::SUCCESS)
        }
        other => {
            say(acting, format!("{service}: rollback {other}: {}", text(done, "why")));
            Ok(exit(false))
        }
    }
}

pub async fn hold(
    ctx: &Context,
    service: Option<&str>,
    hold: Option<(String, Option<i64>)>,
    acting: &Acting,
) -> Result<ExitCode, Failure> {
    if let Some(service) = service {
        service_id(service)?;
    }
    let by = cloud::caller(&ctx.config).await?;
    let target = service.unwrap_or("all");
    let event = match &hold {
        Some((reason, minutes)) => json!({"hold": {"service": target, "reason": reason, "minutes": minutes, "by": by}}),
        None => json!({"release": {"service": target, "by": by}}),
    };
    let report = send(ctx, cloud::WATCH_ROLLOUTS, event, acting).await?;
    let done = &report["hold"];
    let whom = if target == "all" { "every service" } else { target };
    let result = text(done, "result");
    let line = match (result, acting.dry_run) {
        ("held", true) => format!("would hold {whom}"),
        ("released", true) => format!("would release {whom}"),
        ("held", false) => format!("held {whom}"),
        ("already", _) => format!("{whom} was held so already"),
        ("released", false) => format!("released {whom}"),
        (other, _) => format!("{whom}: {other}"),
    };
    let until = done["until"].as_str().map_or_else(
        || if hold.is_some() { " until released".to_owned() } else { String::new() },
        |u| format!(" until {u}"),
    );
    say(acting, format!("{line}{until}"));
    Ok(ExitCode::SUCCESS)
}

pub async fn promote(ctx: &Context, service: &str, acting: &Acting, waiting: &Waiting) -> Result<ExitCode, Failure> {
    service_id(service)?;
    let by = cloud::caller(&ctx.config).await?;
    let report = send(ctx, cloud::WATCH_ROLLOUTS, json!({"promote": service, "by": by}), acting).await?;
    let done = &report["promotion"];
    let result = text(done, "result");
    let from = text(done, "from");
    match result {
        "promoted" => {
            say(
                acting,
                format!("{} {service} from {from}", if acting.dry_run { "would promote" } else { "promoting" }),
            );
            let deployed = done["deployed"].clone();
            rolled(ctx, &deployed, acting, waiting).await
        }
        "already" => {
            say(acting, format!("{service}: already: {}", text(done, "why")));
            Ok(ExitCode::SUCCESS)
        }
        other => {
            say(acting, format!("{service}: {other}: {}", text(done, "why")));
            Ok(exit(false))
        }
    }
}

pub async fn quarantine(
    ctx: &Context,
    digest: &str,
    service: Option<&str>,
    add: Option<Option<String>>,
    acting: &Acting,
) -> Result<ExitCode, Failure> {
    if let Some(service) = service {
        service_id(service)?;
    }
    let by = cloud::caller(&ctx.config).await?;
    let mut asked = json!({"digest": digest, "by": by, "service": service.unwrap_or("all")});
    let key = match &add {
        Some(reason) => {
            if let Some(reason) = reason {
                asked["reason"] = json!(reason);
            }
            "quarantine"
        }
        None => "unquarantine",
    };
    let report = send(ctx, cloud::WATCH_ROLLOUTS, json!({ key: asked }), acting).await?;
    let done = &report["by_hand"];
    let services: Vec<&str> = done["services"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let changed: Vec<&str> = done["changed"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    say(
        acting,
        format!(
            "{}: {} ({} of {} services changed)",
            status::short(digest),
            text(done, "result"),
            changed.len(),
            services.len()
        ),
    );
    for service in services {
        say(acting, format!("  {service}{}", if changed.contains(&service) { "" } else { " (as it was)" }));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn quarantine_list(ctx: &Context, json_out: bool) -> Result<ExitCode, Failure> {
    let status = status::read(&ctx.config, &ctx.stack, None).await?;
    let rows: Vec<Value> = status
        .services
        .iter()
        .flat_map(|s| {
            s.quarantined.iter().map(move |q| {
                json!({"service": format!("{}/{}", s.cluster, s.service), "digest": q.digest, "reason": q.reason, "at": q.at})
            })
        })
        .collect();
    if json_out {
        println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default());
    } else if rows.is_empty() {
        println!("no digest is quarantined");
    } else {
        for row in &rows {
            println!("{}  {}  {}  {}", text(row, "digest"), text(row, "service"), text(row, "at"), text(row, "reason"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn override_group(
    ctx: &Context,
    group: &str,
    awake: bool,
    minutes: Option<i64>,
    acting: &Acting,
) -> Result<ExitCode, Failure> {
    let stacked = ctx.stack.output(cloud::SCALE_GROUP)?;
    if stacked != group {
        return Err(Failure::new(format!("the stack {} scales the group {stacked:?}, not {group:?}", ctx.stack.name)));
    }
    let by = cloud::caller(&ctx.config).await?;
    let state = if awake { "awake" } else { "asleep" };
    let mut asked = json!({"group": group, "state": state, "by": by});
    if let Some(minutes) = minutes {
        asked["minutes"] = json!(minutes);
    }
    let report = send(ctx, cloud::SCALE_TO_ZERO, json!({"override": asked}), acting).await?;
    let set = &report["override"];
    say(acting, format!("{group}: {state} by hand until {} ({})", text(set, "until"), text(set, "result")));
    let decision = text(&report, "decision");
    let reasons: Vec<&str> = report["reasons"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    say(acting, format!("  decision: {decision} ({})", reasons.join("; ")));
    for service in report["services"].as_array().into_iter().flatten() {
        let steps: Vec<String> =
            service["steps"].as_array().into_iter().flatten().map(|s| text(s, "step").to_owned()).collect();
        say(acting, format!("  {}/{}: {}", text(service, "cluster"), text(service, "service"), steps.join(", ")));
    }
    let failed = report["services"].as_array().into_iter().flatten().any(|s| s.get("error").is_some());
    Ok(exit(!failed))
}

pub async fn reset(ctx: &Context, participants: &[String], acting: &Acting, wait: bool) -> Result<ExitCode, Failure> {
    let function = ctx.stack.output(cloud::RESET_DATASPACE)?.to_owned();
    let by = cloud::caller(&ctx.config).await?;
    let mut event = json!({"by": by});
    if !participants.is_empty() {
        event["participants"] = json!(participants);
    }
    // Without --wait the reset runs on its own (asynchronously); a dry run is always shown.
    if !wait && !acting.dry_run {
        cloud::invoke(&ctx.config, &function, &event, true).await?;
        say(acting, format!("reset started ({function}); follow it: aws logs tail /aws/lambda/{function} --follow"));
        return Ok(ExitCode::SUCCESS);
    }
    let report = send(ctx, cloud::RESET_DATASPACE, event, acting).await?;
    let mut ok = true;
    for p in report["participants"].as_array().into_iter().flatten() {
        let restarted = p["services_restarted"].as_array().map_or(0, Vec::len);
        let status = text(p, "status");
        ok &= status == "reset";
        let status = if status == "reset" { ctx.paint.green(status) } else { ctx.paint.red(status) };
        let error = p["error"].as_str().map(|e| format!(": {e}")).unwrap_or_default();
        say(
            acting,
            format!(
                "{}: {status}{} ({restarted} services restarted, {} objects purged){error}",
                text(p, "name"),
                if acting.dry_run { " (dry run)" } else { "" },
                p["objects_purged"].as_u64().unwrap_or(0)
            ),
        );
    }
    Ok(exit(ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        for (text, expected) in [("90m", 90), ("2h", 120), ("1d", 1440), ("1h30m", 90), ("45", 45)] {
            assert_eq!(minutes(text), Ok(expected), "{text}");
        }
        for wrong in ["", "0", "-5", "2x", "h", "2h3", "1.5h"] {
            assert!(minutes(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn a_service_is_cluster_slash_service() {
        assert_eq!(service_id("prod/shop").unwrap().to_string(), "prod/shop");
        for wrong in ["shop", "/shop", "prod/", "a/b/c"] {
            assert!(service_id(wrong).unwrap_err().message.contains("is not <cluster>/<service>"), "{wrong}");
        }
    }
}
