//! `nightshift status`: every service nightshift looks after, read directly
//! (read-only calls), as one table or a stable JSON document (docs/cli.md).

use std::collections::HashMap;

use nightshift::ecs::{DEPLOY_TAG, PROMOTE_FROM_TAG, deployed_image_tag, tag_value};
use nightshift::image::ImageRef;
use nightshift::scale::SCALE_GROUP_TAG;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_ecs::types::{Service, TaskDefinitionField};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::cloud::{self, Failure, Stack, said};

/// reset-dataspace's tag (its own crate's `DATASPACE_TAG`), which with the
/// others above makes a service nightshift's.
pub const DATASPACE_TAG: &str = "nightshift:dataspace";

/// The whole platform at a glance (`--json`: this document, its fields stable).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub stack: String,
    pub region: String,
    /// When it was read (RFC 3339).
    pub at: String,
    /// The hold on every service (`nightshift hold --all`), while it lasts.
    pub hold_all: Option<HoldView>,
    pub services: Vec<ServiceView>,
    pub groups: Vec<GroupView>,
    pub dataspace: Option<DataspaceView>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    pub cluster: String,
    pub service: String,
    pub arn: String,
    pub task_definition: String,
    /// Each container's image: its tag (as nightshift deployed it) and digest.
    pub images: Vec<ImageView>,
    /// The rollout of its newest deployment: `COMPLETED`, `IN_PROGRESS`, `FAILED`; blue/green: `CODE_DEPLOY`.
    pub rollout: String,
    pub desired: i32,
    pub running: i32,
    /// How the checks of the revision it runs ended (verify-rollout), when they ran.
    pub verdict: Option<VerdictView>,
    /// `nightshift:deploy` (the policy it follows pushes by).
    pub follows_pushes: Option<String>,
    /// `nightshift:promote-from`: the service it follows.
    pub follows: Option<String>,
    /// When its next promotion is due (RFC 3339), when one is scheduled.
    pub next_promotion: Option<String>,
    pub quarantined: Vec<QuarantineView>,
    /// `awake`, or `asleep` (desired count 0).
    pub state: String,
    /// Put to sleep after its promotion: since when, and why.
    pub asleep: Option<Value>,
    pub hold: Option<HoldView>,
    pub group: Option<String>,
    pub dataspace: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ImageView {
    pub container: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct VerdictView {
    /// `passed` or `failed`.
    pub result: String,
    pub why: String,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct QuarantineView {
    pub digest: String,
    pub reason: String,
    pub at: String,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct HoldView {
    pub reason: String,
    pub by: String,
    /// `None`: until released.
    pub until: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    pub name: String,
    pub services: Vec<String>,
    /// Every service of it runs (desired count above 0).
    pub awake: bool,
    /// An override by hand in force: `awake` or `asleep`, until when, by whom.
    pub override_state: Option<String>,
    pub override_until: Option<String>,
    pub override_by: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DataspaceView {
    pub name: String,
    pub services: Vec<String>,
    /// When its services last restarted (their newest deployment): the last reset.
    pub last_reset: Option<String>,
}

/// Reads everything `status` shows. `cluster`: only that cluster.
pub async fn read(config: &SdkConfig, stack: &Stack, cluster: Option<&str>) -> Result<Status, Failure> {
    let ecs = aws_sdk_ecs::Client::new(config);
    let now = Utc::now();
    // Every cluster's services (or the one asked for), described with their tags.
    let clusters: Vec<String> = cluster.into_iter().map(str::to_owned).collect();
    let services = nightshift::ecs::services_in(&ecs, &clusters).await.map_err(|e| Failure::new(format!("ECS {e}")))?;
    let ours: Vec<Service> = services
        .into_iter()
        .filter(|s| s.status() == Some("ACTIVE"))
        .filter(|s| [DEPLOY_TAG, PROMOTE_FROM_TAG, SCALE_GROUP_TAG, DATASPACE_TAG].iter().any(|t| tag(s, t).is_some()))
        .collect();
    let table = stack.outputs.get(cloud::STATE_TABLE).cloned();
    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let promotions = next_promotions(config).await?;
    let mut status = Status {
        stack: stack.name.clone(),
        region: config.region().map(ToString::to_string).unwrap_or_default(),
        at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ..Status::default()
    };
    if let Some(table) = &table {
        status.hold_all = get(&dynamodb, table, "hold#all", "hold").await?.and_then(|i| hold_of(&i, now));
    }
    let mut task_definitions: HashMap<String, (Vec<ImageView>, String)> = HashMap::new();
    for service in &ours {
        let td = service.task_definition().unwrap_or_default().to_owned();
        if !task_definitions.contains_key(&td) && !td.is_empty() {
            task_definitions.insert(td.clone(), (images_of(&ecs, &td).await?, td.clone()));
        }
        let mut view = view_of(service, task_definitions.get(&td).map(|(i, _)| i.clone()).unwrap_or_default());
        view.next_promotion = promotions.get(&format!("{}/{}", view.cluster, view.service)).cloned();
        if let Some(table) = &table {
            remembered(&dynamodb, table, &mut view, now).await?;
        }
        status.services.push(view);
    }
    status.groups = groups(&status.services);
    if let (Some(table), Some(group)) = (&table, stack.outputs.get(cloud::SCALE_GROUP))
        && let Some(found) = get(&dynamodb, table, &format!("override#{group}"), "override").await?
    {
        let text = |name: &str| found.get(name).and_then(|v| v.as_s().ok()).cloned();
        let in_force = text("until").and_then(|u| DateTime::parse_from_rfc3339(&u).ok()).is_some_and(|u| now < u);
        if let Some(view) = status.groups.iter_mut().find(|g| &g.name == group).filter(|_| in_force) {
            view.override_state = text("state");
            view.override_until = text("until");
            view.override_by = text("by");
        }
    }
    status.dataspace = dataspace(&ours);
    Ok(status)
}

fn tag<'a>(service: &'a Service, key: &str) -> Option<&'a str> {
    tag_value(service.tags(), key)
}

async fn images_of(ecs: &aws_sdk_ecs::Client, td: &str) -> Result<Vec<ImageView>, Failure> {
    let out = ecs
        .describe_task_definition()
        .task_definition(td)
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .map_err(|e| said(&format!("ECS DescribeTaskDefinition {td}"), e))?;
    let containers = out.task_definition().map(|t| t.container_definitions()).unwrap_or_default();
    Ok(containers
        .iter()
        .map(|c| {
            let name = c.name().unwrap_or_default();
            let image = c.image().and_then(|i| i.parse::<ImageRef>().ok());
            let (own_tag, digest) = image.map_or((None, None), |i| (i.tag, i.digest));
            // The tag nightshift deployed it from (a digest-pinned image names none of its own).
            let deployed = deployed_image_tag(out.tags(), name).map(str::to_owned);
            ImageView { container: name.to_owned(), tag: deployed.or(own_tag), digest }
        })
        .collect())
}

/// A service as ECS says it is.
pub fn view_of(service: &Service, images: Vec<ImageView>) -> ServiceView {
    let arn = service.service_arn().unwrap_or_default();
    let cluster = service.cluster_arn().and_then(|c| c.rsplit('/').next()).unwrap_or_default();
    let primary = service.deployments().iter().find(|d| d.status() == Some("PRIMARY"));
    let code_deploy = service.deployment_controller().map(|c| c.r#type().as_str()) == Some("CODE_DEPLOY");
    let rollout = match primary.and_then(|d| d.rollout_state()) {
        _ if code_deploy => "CODE_DEPLOY".to_owned(),
        Some(state) => state.as_str().to_owned(),
        None => "-".to_owned(),
    };
    ServiceView {
        cluster: cluster.to_owned(),
        service: service.service_name().unwrap_or_default().to_owned(),
        arn: arn.to_owned(),
        task_definition: service.task_definition().unwrap_or_default().to_owned(),
        images,
        rollout,
        desired: service.desired_count(),
        running: service.running_count(),
        follows_pushes: tag(service, DEPLOY_TAG).map(str::to_owned),
        follows: tag(service, PROMOTE_FROM_TAG).map(str::to_owned),
        state: if service.desired_count() > 0 { "awake" } else { "asleep" }.to_owned(),
        group: tag(service, SCALE_GROUP_TAG).map(str::to_owned),
        dataspace: tag(service, DATASPACE_TAG).map(str::to_owned),
        ..ServiceView::default()
    }
}

type Item = HashMap<String, AttributeValue>;

async fn get(dynamodb: &aws_sdk_dynamodb::Client, table: &str, pk: &str, sk: &str) -> Result<Option<Item>, Failure> {
    let out = dynamodb
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.to_owned()))
        .key("sk", AttributeValue::S(sk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| said(&format!("DynamoDB GetItem {pk}"), e))?;
    Ok(out.item().cloned())
}

fn text(item: &Item, name: &str) -> String {
    item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

/// A hold item, while it lasts at `now`.
fn hold_of(item: &Item, now: DateTime<Utc>) -> Option<HoldView> {
    let until = Some(text(item, "until")).filter(|u| !u.is_empty());
    let ended = until.as_deref().and_then(|u| DateTime::parse_from_rfc3339(u).ok()).is_some_and(|u| now >= u);
    (!ended).then(|| HoldView { reason: text(item, "reason"), by: text(item, "by"), until })
}

/// What the state table remembers of the service: quarantine, its verdict, its hold, its sleep.
async fn remembered(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    view: &mut ServiceView,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let mut pages = dynamodb
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(view.arn.clone()))
        .consistent_read(true)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| said(&format!("DynamoDB Query {}", view.arn), e))?;
        for item in page.items() {
            let sort = text(item, "sk");
            if let Some(digest) = sort.strip_prefix("quarantine#") {
                view.quarantined.push(QuarantineView {
                    digest: digest.to_owned(),
                    reason: text(item, "reason"),
                    at: text(item, "at"),
                });
            } else if sort.strip_prefix("verdict#") == Some(view.task_definition.as_str()) {
                view.verdict = Some(VerdictView { result: text(item, "verdict"), why: text(item, "why") });
            }
        }
    }
    view.hold = get(dynamodb, table, &format!("hold#{}", view.arn), "hold").await?.and_then(|i| hold_of(&i, now));
    if let Some(asleep) = get(dynamodb, table, &format!("asleep#{}", view.arn), "asleep").await? {
        view.asleep = Some(serde_json::json!({"since": text(&asleep, "at"), "why": text(&asleep, "why")}));
    }
    Ok(())
}

/// Each promotion due (`promote-*` schedules): `<cluster>/<service>` -> when.
async fn next_promotions(config: &SdkConfig) -> Result<HashMap<String, String>, Failure> {
    let scheduler = aws_sdk_scheduler::Client::new(config);
    let mut found: HashMap<String, String> = HashMap::new();
    let mut pages = scheduler.list_schedules().name_prefix("promote-").into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| said("Scheduler ListSchedules", e))?;
        for listed in page.schedules() {
            let (Some(name), Some(group)) = (listed.name(), listed.group_name()) else { continue };
            let out = scheduler
                .get_schedule()
                .name(name)
                .group_name(group)
                .send()
                .await
                .map_err(|e| said(&format!("Scheduler GetSchedule {name}"), e))?;
            let input: Value =
                out.target().and_then(|t| t.input()).and_then(|i| serde_json::from_str(i).ok()).unwrap_or_default();
            let Some(service) = input["promotion"]["service"].as_str() else { continue };
            let Some(at) =
                out.schedule_expression().and_then(|e| e.strip_prefix("at(")).and_then(|e| e.strip_suffix(')'))
            else {
                continue;
            };
            let at = format!("{at}Z");
            let earlier = found.get(service).is_none_or(|known| at < *known);
            if earlier {
                found.insert(service.to_owned(), at);
            }
        }
    }
    Ok(found)
}

/// The scale groups, from their services.
pub fn groups(services: &[ServiceView]) -> Vec<GroupView> {
    let mut groups: Vec<GroupView> = Vec::new();
    for s in services {
        let Some(name) = &s.group else { continue };
        let id = format!("{}/{}", s.cluster, s.service);
        match groups.iter_mut().find(|g| &g.name == name) {
            Some(group) => {
                group.services.push(id);
                group.awake &= s.desired > 0;
            }
            None => groups.push(GroupView {
                name: name.clone(),
                services: vec![id],
                awake: s.desired > 0,
                ..GroupView::default()
            }),
        }
    }
    groups
}

/// The dataspace's services, and when they last restarted (the newest deployment among them).
fn dataspace(ours: &[Service]) -> Option<DataspaceView> {
    let members: Vec<&Service> = ours.iter().filter(|s| tag(s, DATASPACE_TAG).is_some()).collect();
    let first = members.first()?;
    let last = members
        .iter()
        .flat_map(|s| s.deployments())
        .filter_map(|d| d.created_at())
        .map(|t| t.secs())
        .max()
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    Some(DataspaceView {
        name: tag(first, DATASPACE_TAG).unwrap_or_default().to_owned(),
        services: members
            .iter()
            .map(|s| {
                let cluster = s.cluster_arn().and_then(|c| c.rsplit('/').next()).unwrap_or_default();
                format!("{cluster}/{}", s.service_name().unwrap_or_default())
            })
            .collect(),
        last_reset: last,
    })
}

/// The first 12 hex digits of a digest, as `docker images` shows them.
pub fn short(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.chars().take(12).collect()
}

/// Paints text when the output is a terminal (and `NO_COLOR` is not set).
#[derive(Debug, Clone, Copy)]
pub struct Paint(pub bool);

impl Paint {
    fn paint(self, text: &str, code: &str) -> String {
        if self.0 { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() }
    }
    pub fn red(self, text: &str) -> String {
        self.paint(text, "31")
    }
    pub fn green(self, text: &str) -> String {
        self.paint(text, "32")
    }
    pub fn yellow(self, text: &str) -> String {
        self.paint(text, "33")
    }
    pub fn bold(self, text: &str) -> String {
        self.paint(text, "1")
    }
}

/// The status as a table and a few lines under it.
pub fn render(status: &Status, paint: Paint) -> String {
    let header =
        ["SERVICE", "IMAGE", "DIGEST", "ROLLOUT", "VERDICT", "FOLLOWS", "NEXT PROMOTION", "QUARANTINED", "STATE"];
    let mut rows: Vec<Vec<(String, Option<&str>)>> = Vec::new();
    for s in &status.services {
        let image = s.images.first();
        let follows = s.follows.clone().or_else(|| s.follows_pushes.as_ref().map(|p| format!("pushes ({p})")));
        let rollout_colour = match s.rollout.as_str() {
            "FAILED" => Some("red"),
            "IN_PROGRESS" => Some("yellow"),
            "COMPLETED" => Some("green"),
            _ => None,
        };
        let verdict = s.verdict.as_ref().map(|v| v.result.clone());
        let verdict_colour = verdict.as_deref().map(|v| if v == "passed" { "green" } else { "red" });
        let mut state = s.state.clone();
        if let Some(asleep) = &s.asleep {
            state = format!("asleep since {}", asleep["since"].as_str().unwrap_or("?"));
        }
        let held = s.hold.as_ref().or(status.hold_all.as_ref());
        if let Some(hold) = held {
            state.push_str(&format!(", held until {}", hold.until.as_deref().unwrap_or("released")));
        }
        let quarantined: Vec<String> = s.quarantined.iter().map(|q| short(&q.digest)).collect();
        rows.push(vec![
            (format!("{}/{}", s.cluster, s.service), None),
            (image.and_then(|i| i.tag.clone()).unwrap_or_else(|| "-".into()), None),
            (image.and_then(|i| i.digest.as_deref()).map_or_else(|| "-".into(), short), None),
            (s.rollout.clone(), rollout_colour),
            (verdict.unwrap_or_else(|| "-".into()), verdict_colour),
            (follows.unwrap_or_else(|| "-".into()), None),
            (s.next_promotion.clone().unwrap_or_else(|| "-".into()), None),
            (
                if quarantined.is_empty() { "-".into() } else { quarantined.join(",") },
                (!quarantined.is_empty()).then_some("red"),
            ),
            (state, held.map(|_| "yellow").or_else(|| (s.state == "asleep").then_some("yellow"))),
        ]);
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, (cell, _)) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<(String, Option<&str>)>, out: &mut String| {
        let last = cells.len() - 1;
        for (i, (cell, colour)) in cells.into_iter().enumerate() {
            let pad = if i == last { 0 } else { widths[i] - cell.chars().count() + 2 };
            let painted = match colour {
                Some("red") => paint.red(&cell),
                Some("green") => paint.green(&cell),
                Some("yellow") => paint.yellow(&cell),
                _ => cell,
            };
            out.push_str(&painted);
            out.push_str(&" ".repeat(pad));
        }
        out.push('\n');
    };
    // The header painted bold, padded by its plain width (escapes take no room on screen).
    for (i, h) in header.iter().enumerate() {
        let pad = if i == header.len() - 1 { 0 } else { widths[i] - h.len() + 2 };
        out.push_str(&paint.bold(h));
        out.push_str(&" ".repeat(pad));
    }
    out.push('\n');
    if rows.is_empty() {
        out.push_str("(no service is tagged nightshift:deploy, nightshift:promote-from, nightshift:scale-group or nightshift:dataspace)\n");
    }
    for row in rows {
        line(row, &mut out);
    }
    if let Some(hold) = &status.hold_all {
        let until = hold.until.as_deref().unwrap_or("released");
        out.push_str(
            &paint.yellow(&format!("\nEvery service is held until {until} by {}: {}\n", hold.by, hold.reason)),
        );
    }
    for group in &status.groups {
        let state = if group.awake { paint.green("awake") } else { paint.yellow("asleep") };
        out.push_str(&format!("\nscale group {}: {state} ({})", group.name, group.services.join(", ")));
        if let (Some(o), Some(until)) = (&group.override_state, &group.override_until) {
            out.push_str(&format!("; {o} by hand until {until} by {}", group.override_by.as_deref().unwrap_or("?")));
        }
        out.push('\n');
    }
    if let Some(d) = &status.dataspace {
        out.push_str(&format!(
            "\ndataspace {}: last reset {} ({} services)\n",
            d.name,
            d.last_reset.as_deref().unwrap_or("never"),
            d.services.len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str) -> ServiceView {
        ServiceView {
            cluster: "prod".into(),
            service: name.into(),
            arn: format!("arn:aws:ecs:eu-west-1:1:service/prod/{name}"),
            images: vec![ImageView {
                container: "app".into(),
                tag: Some("1.4.0".into()),
                digest: Some(format!("sha256:{}", "ab".repeat(32))),
            }],
            rollout: "COMPLETED".into(),
            desired: 2,
            running: 2,
            state: "awake".into(),
            ..ServiceView::default()
        }
    }

    #[test]
    fn the_table_shows_each_service_and_what_stands_on_it_plain_when_piped() {
        let mut shop = service("shop");
        shop.follows = Some("staging/shop".into());
        shop.next_promotion = Some("2026-12-06T10:00:00Z".into());
        shop.quarantined.push(QuarantineView { digest: format!("sha256:{}", "cd".repeat(32)), ..Default::default() });
        shop.hold = Some(HoldView { reason: "incident".into(), by: "alice".into(), until: None });
        shop.verdict = Some(VerdictView { result: "failed".into(), why: "2 of 3 checks failed".into() });
        let mut worker = service("worker");
        worker.desired = 0;
        worker.state = "asleep".into();
        worker.group = Some("dagster".into());
        let status = Status {
            stack: "nightshift".into(),
            services: vec![shop.clone(), worker.clone()],
            groups: groups(&[shop, worker]),
            dataspace: Some(DataspaceView { name: "mvd".into(), services: vec!["x/y".into()], last_reset: None }),
            ..Status::default()
        };
        let text = render(&status, Paint(false));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("SERVICE"), "{text}");
        assert!(lines[1].starts_with("prod/shop") && lines[1].contains("1.4.0") && lines[1].contains("abababababab"));
        assert!(
            lines[1].contains("failed")
                && lines[1].contains("staging/shop")
                && lines[1].contains("2026-12-06T10:00:00Z")
        );
        assert!(lines[1].contains("cdcdcdcdcdcd") && lines[1].ends_with("awake, held until released"), "{}", lines[1]);
        assert!(lines[2].starts_with("prod/worker") && lines[2].ends_with("asleep"), "{}", lines[2]);
        assert!(text.contains("scale group dagster: asleep (prod/worker)"), "{text}");
        assert!(text.contains("dataspace mvd: last reset never (1 services)"), "{text}");
        assert!(!text.contains('\x1b'), "no colour when piped");
        assert!(render(&status, Paint(true)).contains("\x1b[31mfailed\x1b[0m"));
    }

    #[test]
    fn a_group_is_awake_only_when_every_service_of_it_runs() {
        let mut a = service("a");
        a.group = Some("g".into());
        let mut b = a.clone();
        b.service = "b".into();
        assert!(groups(&[a.clone(), b.clone()])[0].awake);
        b.desired = 0;
        let found = groups(&[a, b]);
        assert_eq!((found.len(), found[0].awake, found[0].services.len()), (1, false, 2));
    }

    #[test]
    fn a_short_digest_is_its_first_twelve_hex_digits() {
        assert_eq!(short(&format!("sha256:{}", "0123456789ab".repeat(6))), "0123456789ab");
    }
}
