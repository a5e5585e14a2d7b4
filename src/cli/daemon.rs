//! `authsome daemon status|stop`: the per-project background proxies that
//! activated shells use (see [`crate::daemon`]).

use super::Ctx;
use crate::daemon::{self, shells, DaemonDir, Info};
use crate::error::{Error, Result};
use clap::Subcommand;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `authsome daemon …`.
#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Show every running project proxy and the shells using it.
    Status,
    /// Stop the proxy of the project at or above DIR (default: the current
    /// directory), or every one with --all. Shells still inside the project
    /// start a fresh one at their next prompt.
    Stop {
        /// A directory inside the project.
        dir: Option<PathBuf>,
        /// Stop every project proxy.
        #[arg(long, conflicts_with = "dir")]
        all: bool,
    },
    /// Run the proxy of the project file FILE (started by the shell hook).
    #[command(hide = true)]
    Serve {
        /// The project file, absolute.
        file: PathBuf,
    },
}

/// Run a `daemon` subcommand.
pub fn run(ctx: &Ctx, cmd: DaemonCommand) -> Result<i32> {
    match cmd {
        DaemonCommand::Status => status(ctx),
        DaemonCommand::Stop { dir, all } => stop(ctx, dir, all),
        DaemonCommand::Serve { file } => daemon::serve::serve(&ctx.home, &file),
    }
}

fn running(ctx: &Ctx) -> Vec<(DaemonDir, Info, Vec<u32>)> {
    daemon::all(&ctx.home)
        .into_iter()
        .filter_map(|d| {
            let info = d.running()?;
            let live = shells::live(&d.shells_dir());
            Some((d, info, live))
        })
        .collect()
}

fn status(ctx: &Ctx) -> Result<i32> {
    let list = running(ctx);
    if ctx.ui.json {
        let v: Vec<_> = list
            .iter()
            .map(|(_, i, s)| {
                serde_json::json!({
                    "project": i.project.display().to_string(),
                    "pid": i.pid,
                    "port": i.port,
                    "shells": s,
                    "run_id": i.run_id,
                    "started_at": crate::fmt_time(i.started_at),
                })
            })
            .collect();
        ctx.ui.print_json(&serde_json::Value::Array(v));
    } else if list.is_empty() {
        ctx.ui.info("no project proxy is running");
    } else {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|(_, i, s)| {
                let shells = s.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
                vec![
                    i.project.display().to_string(),
                    i.pid.to_string(),
                    format!("127.0.0.1:{}", i.port),
                    shells,
                    crate::fmt_time(i.started_at),
                ]
            })
            .collect();
        print!("{}", crate::ui::table(&["PROJECT", "PID", "LISTENS", "SHELLS", "STARTED"], &rows));
    }
    Ok(0)
}

fn stop(ctx: &Ctx, dir: Option<PathBuf>, all: bool) -> Result<i32> {
    let targets: Vec<Info> = if all {
        running(ctx).into_iter().map(|(_, i, _)| i).collect()
    } else {
        // The one project finder, so a symlinked path names the project the hook activated.
        let file = crate::project::locate(dir.as_deref().unwrap_or(std::path::Path::new(".")))?;
        DaemonDir::for_project(&ctx.home, &file).running().into_iter().collect()
    };
    if targets.is_empty() && !ctx.ui.json {
        ctx.ui.info("no project proxy is running");
        return Ok(0);
    }
    for info in &targets {
        stop_one(info)?;
        if !ctx.ui.json {
            ctx.ui.success(format_args!("stopped the proxy of {} (pid {})", info.project.display(), info.pid));
        }
    }
    if ctx.ui.json {
        let v: Vec<_> = targets.iter().map(|i| serde_json::json!({"project": i.project.display().to_string(), "pid": i.pid})).collect();
        ctx.ui.print_json(&serde_json::json!({"stopped": v}));
    }
    Ok(0)
}

/// SIGTERM, then SIGKILL if it has not exited within a few seconds.
fn stop_one(info: &Info) -> Result<()> {
    use nix::sys::signal::{kill, Signal};
    let pid = nix::unistd::Pid::from_raw(info.pid as i32);
    kill(pid, Signal::SIGTERM).map_err(|e| Error::other(format!("cannot signal pid {}: {e}", info.pid)))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while shells::alive(info.pid, info.pid_start) {
        if Instant::now() > deadline {
            let _ = kill(pid, Signal::SIGKILL);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
