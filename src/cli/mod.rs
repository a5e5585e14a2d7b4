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
use nix::sys::signal::SigHandler;

/// authsome: give programs authenticated API access without handing them a secret.
#[derive(Debug, Parser)]
#[command(name = "authsome", version, about, long_about = None)]
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
#[command(next_help_heading = "Global options")]
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

/// `login --help`: how keys and client credentials can be given.
const LOGIN_HELP: &str = "Log in to a provider (OAuth flow or API key) and store the credential.

API keys can be piped so they stay out of your shell history:
  authsome login openai < key.txt        (or: pbpaste | authsome login openai)
Without a pipe, a local form opens in the browser, or a hidden prompt asks.
OAuth providers ask once for your app's client ID and secret (stored encrypted);
register the redirect URI http://127.0.0.1:7998/auth/callback/oauth with them.";

/// `run --help`: what the command's environment holds.
const RUN_HELP: &str = "Run CMD behind the injecting proxy for every connected provider (default connections).

CMD sees each provider's variables (OPENAI_API_KEY, DISCORD_ACCESS_TOKEN, ...) set to the
placeholder authsome-proxy-managed, HTTPS_PROXY/HTTP_PROXY (and lower-case forms) pointing at
the proxy, NODE_USE_ENV_PROXY=1, and one CA bundle in SSL_CERT_FILE, CURL_CA_BUNDLE,
REQUESTS_CA_BUNDLE, GIT_SSL_CAINFO, NODE_EXTRA_CA_CERTS, AWS_CA_BUNDLE, PIP_CERT, DENO_CERT,
HTTPLIB2_CA_CERTS, GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, NIX_SSL_CERT_FILE and
CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE. Requests to a provider's hosts get the real credential;
the exit code is CMD's. Inside a project, `authsome up` uses authsome.toml instead.";

/// Every command.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Log in to a provider (OAuth flow or API key) and store the credential.
    #[command(long_about = LOGIN_HELP)]
    Login(connections::LoginArgs),
    /// Revoke at the provider when possible, then delete the connection.
    Logout(connections::ConnectionArgs),
    /// Run CMD behind the injecting proxy for every connected provider.
    #[command(long_about = RUN_HELP)]
    Run(run::RunArgs),
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
    /// Edit a provider's definition in $EDITOR; saved as a custom override when valid.
    Edit {
        /// Provider name.
        provider: String,
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
        /// Let the project's definition of PROVIDER replace the bundled or
        /// your own one (your existing PROVIDER credentials then go where the
        /// project's definition says). Repeat for several.
        #[arg(long, value_name = "PROVIDER")]
        replace: Vec<String>,
    },
    /// Revoke trust in a project's authsome.toml.
    Deny {
        /// Directory (or the file itself); the nearest authsome.toml at or above it.
        dir: Option<std::path::PathBuf>,
    },
    /// Show the audit log of injections and refusals.
    Log(run::LogArgs),
    /// Check the home layout, permissions, key source and vault.
    Doctor {
        /// Tighten the permissions it reports (it changes nothing without this).
        #[arg(long)]
        fix: bool,
    },
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
    /// Skipped provider files were already reported (one warning per command).
    warned: std::sync::atomic::AtomicBool,
}

impl Ctx {
    /// Settings and home of one command.
    pub fn new(ui: Ui, home: Home) -> Ctx {
        Ctx { ui, home, warned: std::sync::atomic::AtomicBool::new(false) }
    }

    /// Bundled plus custom providers. Broken files under `<home>/providers`
    /// are named in one warning and skipped, so they break only their own provider.
    pub fn registry(&self) -> Result<Registry> {
        let reg = Registry::load(&self.home)?;
        if !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
            for s in reg.skipped() {
                let first = s.error.message.lines().next().unwrap_or_default();
                self.ui.warn(format_args!("ignoring {first} (`authsome edit {}` fixes it, `authsome remove {}` drops it)", s.name, s.name));
            }
        }
        Ok(reg)
    }

    /// [`Ctx::registry`] plus, inside a project whose `authsome.toml` is
    /// allowed, its `[definitions]` (source `project`): what `login`, `get`,
    /// `list` and `inspect` see. An unallowed project's definitions answer
    /// with the `allow` command instead of "unknown provider".
    pub fn registry_here(&self) -> Result<Registry> {
        let reg = self.registry()?;
        let Some(file) = crate::project::find(std::path::Path::new(".")) else { return Ok(reg) };
        let (project, with, trust) = match crate::launch::project::open(&self.home, &file) {
            Ok(p) => p,
            Err(_) => return Ok(reg),
        };
        if trust == crate::project::trust::Trust::Allowed {
            return Ok(with);
        }
        let mut reg = reg;
        let names = project.definitions.iter().map(|d| &d.name).chain(project.unread.iter().map(|d| &d.name));
        for name in names {
            reg.refuse(
                name,
                Error::unknown(format!(
                    "{} is defined by {}, which is {}; run `{}` first",
                    name,
                    project.file.display(),
                    trust.as_str(),
                    crate::project::trust::fix_command(&project, &trust)
                )),
            );
        }
        Ok(reg)
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
    sigpipe(SigHandler::SigDfl);
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
            // Usage errors look like every other error: `authsome: error: …`.
            let text = e.render().to_string();
            eprintln!("authsome: error: {}", text.strip_prefix("error: ").unwrap_or(&text).trim_end());
            return crate::error::exit::BAD_INPUT;
        }
    };
    if serves_sockets(&cli.command) {
        sigpipe(SigHandler::SigIgn);
    }
    let ui = Ui::new(cli.global.json, cli.global.quiet, cli.global.no_color);
    let ctx = Ctx::new(ui, Home::from_env(cli.global.profile.as_deref()));
    match dispatch(&ctx, cli.command) {
        Ok(code) => code,
        Err(e) => e.print(&ui),
    }
}

/// Set the SIGPIPE disposition. Commands that only print take the Unix
/// default, so `authsome list | head` ends quietly like `ls | head` instead of
/// panicking on a closed pipe; commands that serve sockets (proxy, login
/// server) ignore it, so a client hanging up never kills them.
fn sigpipe(handler: SigHandler) {
    // SAFETY: called while single-threaded, with a handler that is not a Rust function.
    let _ = unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, handler) };
}

/// The command tree for `completions`, with the provider names known now
/// (bundled, custom, the current project's), the connection names of the
/// vault when one exists, and the flow values offered as completions.
fn completion_command(ctx: &Ctx) -> clap::Command {
    use clap::builder::PossibleValuesParser;
    use clap::CommandFactory;
    // clap wants 'static names; this process prints the script and exits.
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let providers: Vec<&'static str> =
        ctx.registry_here().map(|r| r.iter().map(|p| leak(p.name().to_owned())).collect()).unwrap_or_default();
    let data = if ctx.home.vault_file().exists() { ctx.vault().and_then(|v| v.load()).ok() } else { None };
    let mut connections: Vec<String> = data.map(|d| d.connections.values().map(|c| c.name.clone()).collect()).unwrap_or_default();
    connections.sort();
    connections.dedup();
    let connections: Vec<&'static str> = connections.into_iter().map(leak).collect();
    let mut cmd = Cli::command();
    for sub in ["login", "logout", "get", "refresh", "inspect", "edit", "remove"] {
        let names = providers.clone();
        cmd = cmd.mut_subcommand(sub, |s| s.mut_arg("provider", |a| a.value_parser(PossibleValuesParser::new(names))));
        if !connections.is_empty() && matches!(sub, "login" | "logout" | "get" | "refresh") {
            let conns = connections.clone();
            cmd = cmd.mut_subcommand(sub, |s| s.mut_arg("connection", |a| a.value_parser(PossibleValuesParser::new(conns))));
        }
    }
    cmd.mut_subcommand("login", |s| {
        s.mut_arg("flow", |a| a.value_parser(PossibleValuesParser::new(["pkce", "device_code", "dcr_pkce", "api_key"])))
    })
}

/// Commands that run a proxy or a login server (see [`sigpipe`]).
fn serves_sockets(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::Login(_)
            | Command::Logout(_)
            | Command::Refresh(_)
            | Command::Run(_)
            | Command::Up(_)
            | Command::Exec(_)
            | Command::Daemon { command: daemon::DaemonCommand::Serve { .. } }
    )
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
        Command::Edit { provider } => registry::edit(ctx, &provider),
        Command::Remove { provider } => registry::remove(ctx, &provider),
        Command::Up(a) => up::up(ctx, a),
        Command::Exec(a) => exec::exec(ctx, a),
        Command::Status => project::status(ctx),
        Command::Init => project::init(ctx),
        Command::Allow { dir, replace } => project::allow(ctx, dir, &replace),
        Command::Deny { dir } => project::deny(ctx, dir),
        Command::Run(a) => run::run(ctx, a),
        Command::Log(a) => run::log(ctx, a),
        Command::Doctor { fix } => doctor::run(ctx, fix),
        Command::Hook { shell } => Ok(crate::shell::hook_command(shell)),
        Command::Export { shell, pid } => Ok(crate::shell::export::run(&ctx.home, shell, pid)),
        Command::Daemon { command } => daemon::run(ctx, command),
        Command::Store { command } => store::run(ctx, command),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut completion_command(ctx), "authsome", &mut std::io::stdout());
            Ok(0)
        }
    }
}
