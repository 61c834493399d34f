//! The `oxwsgi` command: parse the command line, build the `Site`, run it.
//!
//! Exit codes (DESIGN.md §2): 0 success, 1 bad configuration or usage,
//! 2 runtime failure to start.

use std::process::ExitCode;

use oxwsgi::cli::{Cli, Command};
use oxwsgi::config::{self, model::Site};
use oxwsgi::server::SiteLoader;

fn main() -> ExitCode {
    oxwsgi::malloc_tuning::tune_this_process();
    let cli = Cli::parse_or_exit();
    if matches!(cli.command, Command::Serve(_) | Command::Run(_)) {
        // Socket activation: adopt systemd's descriptors before anything
        // else opens one.
        if let Err(error) = oxwsgi::systemd::take_inherited_listeners() {
            eprintln!("oxwsgi: {error}");
            return ExitCode::from(2);
        }
    }
    let mut reload: Option<SiteLoader> = None;
    let site = match &cli.command {
        Command::Serve(args) => config::from_serve_args(args),
        Command::Run(args) => {
            let path = args.config.clone();
            let admin = args.admin;
            let drain_grace = args.drain_grace;
            let code_reload = (
                args.reload,
                args.reload_include.clone(),
                args.reload_exclude.clone(),
            );
            reload = Some(Box::new(move || {
                config::load(&path)
                    .map_err(|error| error.to_string())
                    .and_then(|site| with_admin(site, admin))
                    .map(|site| with_drain_grace(site, drain_grace))
                    .map(|site| with_reload(site, &code_reload))
            }));
            match config::load_with_warnings(&args.config) {
                Ok((site, warnings)) => {
                    for warning in &warnings {
                        eprintln!("oxwsgi: warning: {warning}");
                    }
                    match with_admin(site, args.admin) {
                        Ok(site) => Ok(with_reload(
                            with_drain_grace(site, args.drain_grace),
                            &(
                                args.reload,
                                args.reload_include.clone(),
                                args.reload_exclude.clone(),
                            ),
                        )),
                        Err(error) => {
                            eprintln!("oxwsgi: {error}");
                            return ExitCode::from(1);
                        }
                    }
                }
                Err(error) => Err(error),
            }
        }
        Command::Check(args) => return check(&args.config),
        Command::Convert(args) => return convert(&args.apache_conf),
        Command::Status(args) => return status(args),
    };
    let site = match site {
        Ok(site) => site,
        Err(error) => {
            eprintln!("oxwsgi: {error}");
            return ExitCode::from(1);
        }
    };
    run(site, reload)
}

fn run(site: Site, reload: Option<SiteLoader>) -> ExitCode {
    if let Err(error) = oxwsgi::logging::init(site.error_log.as_deref(), site.error_log_json) {
        eprintln!("oxwsgi: cannot open the error log: {error}");
        return ExitCode::from(2);
    }
    let front_threads = site.edge.front_threads();
    tracing::info!("front: {front_threads} runtime thread(s)");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(front_threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("oxwsgi: cannot start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(oxwsgi::server::serve(site, reload)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            eprintln!("oxwsgi: {error}");
            ExitCode::from(2)
        }
    }
}

/// `oxwsgi check CONFIG`: the layout and warnings on stdout; exit 0 when
/// the config loads (warnings or not), 1 with the error on stderr.
fn check(path: &std::path::Path) -> ExitCode {
    let (site, mut warnings) = match config::load_with_warnings(path) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("oxwsgi: {error}");
            return ExitCode::from(1);
        }
    };
    warnings.extend(config::check::site_warnings(&site));
    let format = if config::is_toml(path) {
        "native TOML"
    } else {
        "Apache site file"
    };
    print!("{}", config::check::report(path, format, &site, &warnings));
    ExitCode::SUCCESS
}

/// `run --admin`: the admin address instead of the config's.
/// `run --reload` turns code reloading on (a config's `reload = true` too);
/// `--reload-include` / `--reload-exclude` add to the config's globs.
fn with_reload(
    mut site: Site,
    (reload, include, exclude): &(bool, Vec<String>, Vec<String>),
) -> Site {
    site.reload |= reload;
    site.reload_include.extend(include.iter().cloned());
    site.reload_exclude.extend(exclude.iter().cloned());
    site
}

/// `run --drain-grace`: the grace instead of the config's `drain-grace`
/// (the only way to set one for an Apache site file).
fn with_drain_grace(mut site: Site, grace: Option<std::time::Duration>) -> Site {
    if let Some(grace) = grace {
        site.edge.drain_grace = grace;
    }
    site
}

fn with_admin(mut site: Site, admin: Option<std::net::SocketAddr>) -> Result<Site, String> {
    if let Some(admin) = admin {
        if site.listen.contains(&admin) {
            return Err(format!(
                "--admin: {admin} is also a listen address: the admin endpoints need an address of their own"
            ));
        }
        site.admin = Some(admin);
    }
    Ok(site)
}

/// `oxwsgi status`: the admin address from `--admin`, else the config
/// file's `admin`, else the default; exit 2 when the server cannot be read.
fn status(args: &oxwsgi::cli::StatusArgs) -> ExitCode {
    let addr = match (args.admin, &args.config) {
        (Some(addr), _) => addr,
        (None, Some(path)) => match config::load(path) {
            Ok(site) => match site.admin {
                Some(addr) => addr,
                None => {
                    eprintln!(
                        "oxwsgi: {} sets no `admin` address; give one with --admin",
                        path.display()
                    );
                    return ExitCode::from(1);
                }
            },
            Err(error) => {
                eprintln!("oxwsgi: {error}");
                return ExitCode::from(1);
            }
        },
        (None, None) => match oxwsgi::cli::DEFAULT_STATUS_ADMIN.parse() {
            Ok(addr) => addr,
            Err(_) => return ExitCode::from(1),
        },
    };
    let watch = args.watch.then_some(args.interval);
    ExitCode::from(oxwsgi::status_cmd::run(addr, args.json, watch))
}

/// `oxwsgi convert FILE`: the native TOML on stdout, the loader's warnings
/// on stderr; exit 1 when the file does not load.
fn convert(path: &std::path::Path) -> ExitCode {
    let converted = config::load_with_warnings(path).and_then(|(site, warnings)| {
        for warning in &warnings {
            eprintln!("oxwsgi: warning: {warning}");
        }
        config::convert::to_toml(&site, path)
    });
    match converted {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("oxwsgi: {error}");
            ExitCode::from(1)
        }
    }
}
