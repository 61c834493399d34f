//! The `oxwsgi` command: parse the command line, build the `Site`, run it.
//!
//! Exit codes (DESIGN.md §2): 0 success, 1 bad configuration or usage,
//! 2 runtime failure to start.

use std::process::ExitCode;

use oxwsgi::cli::{Cli, Command};
use oxwsgi::config::{self, model::Site};
use oxwsgi::server::SiteLoader;

fn main() -> ExitCode {
    let cli = Cli::parse_or_exit();
    let mut reload: Option<SiteLoader> = None;
    let site = match &cli.command {
        Command::Serve(args) => config::from_serve_args(args),
        Command::Run(args) => {
            let path = args.config.clone();
            reload = Some(Box::new(move || {
                config::load(&path).map_err(|error| error.to_string())
            }));
            config::load(&args.config)
        }
        other => {
            eprintln!("oxwsgi: `{}` is not implemented yet", other.name());
            return ExitCode::from(1);
        }
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
    if let Err(error) = oxwsgi::logging::init(site.error_log.as_deref()) {
        eprintln!("oxwsgi: cannot open the error log: {error}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
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
