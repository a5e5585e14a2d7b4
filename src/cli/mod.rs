//! Command-line interface: the clap definitions (README.md documents them) and dispatch to one
//! module per command family. Every command returns its exit code; errors carry
//! theirs (see [`crate::error::exit`]).

mod connections;
mod daemon;
mod doctor;
mod exec;
pub mod project;
mod registry;
mod run;
mod store;
mod up;

use crate::error::{Error, Result};
use crate::paths::Home;
use crate::providers::Registry;
use crate::shell::Shell;
use crate::store::Store;
use crate::ui::Ui;
use clap::{Args, Parser, Subcommand};

/// authsome: give programs authenticated API access without handing them a secret.
#[derive(Debug, Parser)]
#[command(name = "authsome", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    /// Flags every command accepts.
    #[command(flatten)]
    pub global: Global,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted by every command.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// Stable machine-readable output.
    #[arg(long, global = true)]
    pub json: bool,
    /// Only print results and errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Never colour output (also: NO_COLOR).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Vault profile (default: $AUTHSOME_PROFILE, else "default").
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
}

/// Every command.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Log in to a provider (OAuth flow or API key) and store the credential.
    Login(connections::LoginArgs),
    /// Revoke at the provider when possible, then delete the connection.
    Logout(connections::ConnectionArgs),
    /// Show a connection, secrets redacted.
    Get(connections::GetArgs),
    /// Refresh an OAuth token now if it is near expiry (always with --force).
    Refresh(connections::RefreshArgs),
    /// Every provider with its source and connections.
    List {
        /// Only providers of this category (llm, devtools, productivity, crm, ...).
        #[arg(long, value_name = "NAME")]
        category: Option<String>,
    },
    /// The effective definition of a provider, as a valid provider file.
    Inspect {
        /// Provider name.
        provider: String,
        /// Print the provider's documentation page (Markdown) instead.
        #[arg(long)]
        page: bool,
    },
    /// Validate a provider file and install it under <home>/providers.
    Register {
        /// Path to the provider JSON file.
        file: std::path::PathBuf,
        /// Replace an existing custom definition of the same name.
        #[arg(long)]
        force: bool,
    },
    /// Drop a custom definition, restoring the bundled one (if any).
    Remove {
        /// Provider name.
        provider: String,
    },
    /// Project mode: reconcile authsome.toml (log in what is missing), then run CMD, [run] command or $SHELL.
    Up(exec::ProjectRunArgs),
    /// Project mode for CI: never prompts; runs CMD (default: [run] command) behind the proxy.
    Exec(exec::ProjectRunArgs),
    /// Project view: each requirement of authsome.toml, satisfied or not, and the fix.
    Status,
    /// Write a commented starter authsome.toml in the current directory.
    Init,
    /// Trust a project's authsome.toml as it is now (default: the current directory's).
    Allow {
        /// Directory (or the file itself); the nearest authsome.toml at or above it.
        dir: Option<std::path::PathBuf>,
    },
    /// Revoke trust in a project's authsome.toml.
    Deny {
        /// Directory (or the file itself); the nearest authsome.toml at or above it.
        dir: Option<std::path::PathBuf>,
    },
    /// Run CMD behind the injecting proxy for every connected provider.
    Run(run::RunArgs),
    /// Show the audit log of injections and refusals.
    Log(run::LogArgs),
    /// Check the home layout, permissions, key source and vault.
    Doctor,
    /// Print the rc-file snippet that activates projects on `cd` (bash, zsh, fish).
    Hook {
        /// bash, zsh or fish.
        #[arg(value_parser = shell_names(&["bash", "zsh", "fish"]))]
        shell: Shell,
    },
    /// Print the statements moving this shell to the environment the current directory wants.
    Export {
        /// bash, zsh, fish or json.
        #[arg(value_parser = shell_names(&["bash", "zsh", "fish", "json"]))]
        shell: Shell,
        /// PID of the shell being activated (set by the hook).
        #[arg(long, hide = true)]
        pid: Option<u32>,
    },
    /// Show or stop the per-project background proxies of activated shells.
    Daemon {
        /// `status` or `stop`.
        #[command(subcommand)]
        command: daemon::DaemonCommand,
    },
    /// Set up or inspect the team store (init, status, migrate --from-file, export).
    Store {
        /// init, status, migrate or export.
        #[command(subcommand)]
        command: store::StoreCommand,
    },
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// A parser accepting the shell names `names` (listed in `--help` and in the error for anything else).
fn shell_names(names: &'static [&'static str]) -> impl clap::builder::TypedValueParser<Value = Shell> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(names).map(|s| Shell::parse(&s).expect("every listed name is a shell"))
}

/// What every command needs: output settings and the home. The registry and
/// the vault are opened only by the commands that use them.
pub(crate) struct Ctx {
    /// Output settings.
    pub ui: Ui,
    /// Home and profile.
    pub home: Home,
}

impl Ctx {
    /// Bundled plus custom providers.
    pub fn registry(&self) -> Result<Registry> {
        Registry::load(&self.home)
    }
    /// The profile's store: its vault file (resolves the key) or its team store.
    pub fn vault(&self) -> Result<Store> {
        Store::open(&self.home)
    }
}

/// Parse arguments and run the command; returns the process exit code.
pub fn main() -> i32 {
    // The prompt hook runs on every prompt: answer it before any other set-up.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = crate::shell::fast_main(&args) {
        return code;
    }
    // Before anything else (and while single-threaded): a child must not be able
    // to read this process, nor find the vault key in its environment.
    crate::fence::process::harden();
    crate::fence::process::take(crate::vault::key::ENV_VAR);
    for var in crate::store::select::SECRET_VARS {
        crate::fence::process::take(var);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return 0;
        }
        // Usage errors leave through the one printer too, so `--json` gets JSON.
        Err(e) if args.iter().any(|a| a == "--json") => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or_default().trim_start_matches("error: ").to_owned();
            return Error::bad_input(first).print(&Ui::new(true, false, true));
        }
        Err(e) => {
            let _ = e.print();
            return crate::error::exit::BAD_INPUT;
        }
    };
    let ui = Ui::new(cli.global.json, cli.global.quiet, cli.global.no_color);
    let ctx = Ctx { ui, home: Home::from_env(cli.global.profile.as_deref()) };
    match dispatch(&ctx, cli.command) {
        Ok(code) => code,
        Err(e) => e.print(&ui),
    }
}

fn dispatch(ctx: &Ctx, cmd: Command) -> Result<i32> {
    match cmd {
        Command::Login(a) => connections::login(ctx, a),
        Command::Logout(a) => connections::logout(ctx, a),
        Command::Get(a) => connections::get(ctx, a),
        Command::Refresh(a) => connections::refresh(ctx, a),
        Command::List { category } => registry::list(ctx, category.as_deref()),
        Command::Inspect { provider, page } => registry::inspect(ctx, &provider, page),
        Command::Register { file, force } => registry::register(ctx, &file, force),
        Command::Remove { provider } => registry::remove(ctx, &provider),
        Command::Up(a) => up::up(ctx, a),
        Command::Exec(a) => exec::exec(ctx, a),
        Command::Status => project::status(ctx),
        Command::Init => project::init(ctx),
        Command::Allow { dir } => project::allow(ctx, dir),
        Command::Deny { dir } => project::deny(ctx, dir),
        Command::Run(a) => run::run(ctx, a),
        Command::Log(a) => run::log(ctx, a),
        Command::Doctor => doctor::run(ctx),
        Command::Hook { shell } => Ok(crate::shell::hook_command(shell)),
        Command::Export { shell, pid } => Ok(crate::shell::export::run(&ctx.home, shell, pid)),
        Command::Daemon { command } => daemon::run(ctx, command),
        Command::Store { command } => store::run(ctx, command),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "authsome", &mut std::io::stdout());
            Ok(0)
        }
    }
}
