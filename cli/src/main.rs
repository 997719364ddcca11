//! `nightshift`: see the whole platform at a glance, and act on it by hand.
//!
//! It reads state directly (read-only calls) and changes things only by
//! invoking the deployed functions with their manual events (docs/cli.md), so
//! a by-hand action has the same permissions, checks, logs, metrics and
//! notices as an automatic one, and names who did it.

mod act;
mod cloud;
mod status;
mod wait;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "nightshift", version, about = "See what nightshift runs where, and act on it by hand.")]
struct Cli {
    /// The CloudFormation stack nightshift was deployed as (sam deploy's stack name).
    #[arg(long, global = true, env = "NIGHTSHIFT_STACK", default_value = "nightshift")]
    stack: String,
    /// The AWS profile to act as (else AWS_PROFILE, the environment, SSO, ...).
    #[arg(long, global = true)]
    profile: Option<String>,
    /// The region the stack is in (else AWS_REGION, the profile's).
    #[arg(long, global = true)]
    region: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// What every command that changes something takes.
#[derive(Debug, Clone, Args)]
pub struct Acting {
    /// Print what the function would do, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the function's whole report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--wait`, for what runs on after the function answered.
#[derive(Debug, Clone, Args)]
pub struct Waiting {
    /// Show progress until the outcome; exit non-zero when it failed.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits at most, in minutes.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=1440))]
    pub timeout: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every service nightshift looks after: image, rollout, verdict, promotion, quarantine, sleep, holds.
    Status {
        /// Only this cluster.
        #[arg(long)]
        cluster: Option<String>,
        /// The stable JSON document (docs/cli.md) instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Roll an image out to a service now, as its push would (same policy, quarantine refusal, notices).
    Deploy {
        /// <cluster>/<service>
        service: String,
        /// An image tag, or a digest (sha256:...).
        image: String,
        #[command(flatten)]
        acting: Acting,
        #[command(flatten)]
        waiting: Waiting,
    },
    /// Back to the images that ran before; the current digest quarantined, the service held until released.
    Rollback {
        /// <cluster>/<service>
        service: String,
        /// Why (told, and kept with the quarantine and the hold).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        acting: Acting,
        #[command(flatten)]
        waiting: Waiting,
    },
    /// No automatic rollout or promotion into the service (or every service) while held.
    Hold {
        /// <cluster>/<service>
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        service: Option<String>,
        /// Every service.
        #[arg(long)]
        all: bool,
        /// How long: 90m, 2h, 1d (at most 30d); without it, until released.
        #[arg(long = "for", value_parser = act::minutes)]
        duration: Option<i64>,
        /// Why (shown in status, and in every push or promotion it stops).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        acting: Acting,
    },
    /// Ends a hold.
    Release {
        /// <cluster>/<service>
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        service: Option<String>,
        /// The hold on every service.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        acting: Acting,
    },
    /// Promote into the service now, every check applied (soak, quarantine, verdicts): refused, saying why, when one fails.
    Promote {
        /// <cluster>/<service>, tagged nightshift:promote-from.
        service: String,
        #[command(flatten)]
        acting: Acting,
        #[command(flatten)]
        waiting: Waiting,
    },
    /// The digests that never roll out again where they are quarantined.
    Quarantine {
        #[command(subcommand)]
        what: QuarantineCommand,
    },
    /// Wake the scale group now, and keep it awake for a while; then its windows rule again.
    Wake {
        group: String,
        /// How long: 90m, 3h (at most 7d); 1h when not given.
        #[arg(long = "for", value_parser = act::minutes)]
        duration: Option<i64>,
        #[command(flatten)]
        acting: Acting,
    },
    /// Put the scale group to sleep now, its windows aside for a while (ingress still wakes it).
    Sleep {
        group: String,
        /// How long: 90m, 3h (at most 7d); 1h when not given.
        #[arg(long = "for", value_parser = act::minutes)]
        duration: Option<i64>,
        #[command(flatten)]
        acting: Acting,
    },
    /// Reset the dataspace to its initial setup now (the button).
    Reset {
        /// Only this participant (repeat for more); every participant when not given.
        #[arg(long = "participant")]
        participants: Vec<String>,
        #[command(flatten)]
        acting: Acting,
        /// Wait for the reset to end, and show it; exit non-zero when a participant failed.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Subcommand)]
enum QuarantineCommand {
    /// Every digest quarantined, on which service, and why.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Quarantine a digest on every service nightshift rolls out (or one).
    Add {
        digest: String,
        /// Only on this <cluster>/<service>.
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        acting: Acting,
    },
    /// Let a quarantined digest roll out again.
    Release {
        digest: String,
        /// Only on this <cluster>/<service>.
        #[arg(long)]
        service: Option<String>,
        #[command(flatten)]
        acting: Acting,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let paint = status::Paint(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    match run(cli, paint).await {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("nightshift: {failure}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, paint: status::Paint) -> Result<ExitCode, cloud::Failure> {
    let config = cloud::load(cli.profile.as_deref(), cli.region.as_deref()).await;
    let stack = cloud::Stack::find(&config, &cli.stack).await?;
    let ctx = act::Context { config, stack, paint };
    match cli.command {
        Command::Status { cluster, json } => {
            let status = status::read(&ctx.config, &ctx.stack, cluster.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status).unwrap_or_default());
            } else {
                print!("{}", status::render(&status, paint));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Deploy { service, image, acting, waiting } => {
            act::deploy(&ctx, &service, &image, &acting, &waiting).await
        }
        Command::Rollback { service, reason, acting, waiting } => {
            act::rollback(&ctx, &service, reason.as_deref(), &acting, &waiting).await
        }
        Command::Hold { service, all: _, duration, reason, acting } => {
            act::hold(&ctx, service.as_deref(), Some((reason, duration)), &acting).await
        }
        Command::Release { service, all: _, acting } => act::hold(&ctx, service.as_deref(), None, &acting).await,
        Command::Promote { service, acting, waiting } => act::promote(&ctx, &service, &acting, &waiting).await,
        Command::Quarantine { what } => match what {
            QuarantineCommand::List { json } => act::quarantine_list(&ctx, json).await,
            QuarantineCommand::Add { digest, service, reason, acting } => {
                act::quarantine(&ctx, &digest, service.as_deref(), Some(reason), &acting).await
            }
            QuarantineCommand::Release { digest, service, acting } => {
                act::quarantine(&ctx, &digest, service.as_deref(), None, &acting).await
            }
        },
        Command::Wake { group, duration, acting } => act::override_group(&ctx, &group, true, duration, &acting).await,
        Command::Sleep { group, duration, acting } => act::override_group(&ctx, &group, false, duration, &acting).await,
        Command::Reset { participants, acting, wait } => act::reset(&ctx, &participants, &acting, wait).await,
    }
}
