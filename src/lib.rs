//! `asgard-stats`: collects per-task CPU and memory usage from an Apache Mesos cluster
//! and publishes one JSON document per task to RabbitMQ. The crate root holds the module
//! tree and [`run`], which parses the command line, sets up the process once (signals,
//! allocator, open-files limit), runs the subcommand and maps its result to an exit code;
//! see ARCHITECTURE.md. It is a library only so that the fuzz targets (`fuzz/`) reach the
//! parsers through `fuzzing`, built with `--cfg fuzzing` alone; `main.rs` calls [`run`].

mod broker;
mod cli;
mod config;
mod exit;
mod mesos;
mod ops;
mod output;
mod pass;
mod process;
mod state;
mod stats;
mod wire_limits;

#[cfg(fuzzing)]
pub mod fuzzing;

use cli::Command;
use config::{Config, ConfigError};
use output::OutputFormat;
use pass::tally::Summary;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::time::Instant;

/// The whole of the `asgard-stats` command: its exit code.
pub fn run() -> i32 {
    let args: Vec<OsString> = std::env::args_os().collect();
    let env = |name: &str| std::env::var(name).ok();
    let (cli, matches) = match cli::parse_keeping_matches(&args) {
        Ok(parsed) => parsed,
        // --help and --version are not errors; clap knows which is which.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return exit::OK;
        }
        Err(e) => {
            // Before logging is set up: the error is logged in the format asked for.
            cli::logging::init(cli::errors::log_format_before_parsing(&args, env));
            log::error!(
                "configuration: {}",
                cli::errors::describe_parse_error(&e, &args)
            );
            return end_unconfigured(cli::settings_despite_errors(&args).as_ref(), &args);
        }
    };
    cli::logging::init(cli.settings.log_format);
    if let Command::Man = cli.command {
        return print_man_page();
    }
    for warning in Config::secret_flag_warnings(&cli.settings) {
        log::warn!("{warning}");
    }
    let variables = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok());
    for warning in cli::unknown_env::unknown_variable_warnings(variables) {
        log::warn!("{warning}");
    }
    let configuration_error = |e: ConfigError| {
        let name = e
            .setting()
            .map(|flag| cli::errors::setting_name(&matches, flag))
            .unwrap_or_default();
        log::error!("configuration: {}", e.naming(&name));
        end_unconfigured(Some(&cli.settings), &args)
    };
    let config = match Config::from_settings(&cli.settings, env) {
        Ok(config) => config,
        Err(e) => return configuration_error(e),
    };
    log::debug!("{config:?}");
    match cli.command {
        Command::Collect(args) => {
            let interval = match config::dry_run_interval(&args) {
                Ok(interval) => interval,
                Err(e) => return configuration_error(e),
            };
            let declare_queue = match config::declare_queue(&args, &config) {
                Ok(declare) => declare,
                Err(e) => return configuration_error(e),
            };
            let mode = if args.dry_run {
                let terminal = std::io::stdout().is_terminal();
                let output = args.output.unwrap_or(if terminal {
                    OutputFormat::Table
                } else {
                    OutputFormat::Json
                });
                pass::Mode::DryRun { interval, output }
            } else {
                pass::Mode::Collect { declare_queue }
            };
            let started = Instant::now();
            let process = set_up_process();
            let summary = pass::run(&config, mode, process).unwrap_or_else(|e| {
                log::log!(exit::log_level(e.exit_code()), "{e}");
                Summary::ended_early(e.exit_code(), started.elapsed(), args.dry_run)
            });
            end_pass(&config, &summary)
        }
        Command::Check => ops::check::run(&config),
        Command::Man => exit::OK,
    }
}

/// The process-wide settings a pass needs, made once here before it: the allocator
/// gives large buffers back, SIGTERM and SIGINT request a stop, and the open-files soft
/// limit is raised to the hard one. No other module changes a process-wide setting.
fn set_up_process() -> pass::Process {
    process::give_large_buffers_back();
    let stop = process::on_signals().unwrap_or_else(|e| {
        log::warn!("cannot handle SIGTERM and SIGINT ({e}); a signal ends the pass at once");
        std::sync::Arc::new(pass::stop::Stop::default())
    });
    let open_files = process::raise_to_hard_limit();
    pass::Process { stop, open_files }
}

/// Every pass ends here, failed ones included: its metrics file and its push to the
/// Pushgateway (a dry run does neither), then its summary line, last, and its exit code.
fn end_pass(config: &Config, summary: &Summary) -> i32 {
    report_metrics(&config.metrics_destination(), summary);
    summary.log();
    match summary.exit_code() {
        // What a scheduler sees; the summary and the metrics still say partial.
        exit::PARTIAL if config.partial_exits_zero => exit::OK,
        code => code,
    }
}

/// A run of `collect` whose settings are wrong (exit 2) still leaves its exit code and
/// time in the metrics file and the Pushgateway, wherever those settings themselves can
/// be read (docs/exit-codes.md): the alert on failing passes then sees it.
fn end_unconfigured(settings: Option<&cli::Settings>, args: &[OsString]) -> i32 {
    let collects = args.iter().any(|a| a == "collect");
    let dry_run = args.iter().any(|a| a == "--dry-run");
    if let (Some(settings), true, false) = (settings, collects, dry_run) {
        let to = config::MetricsDestination::best_effort(settings);
        report_metrics(
            &to,
            &Summary::ended_early(exit::USAGE, Default::default(), false),
        );
    }
    exit::USAGE
}

fn report_metrics(to: &config::MetricsDestination, summary: &Summary) {
    if !to.is_some() || summary.dry_run {
        return;
    }
    let metrics = ops::metrics::render(summary, to);
    if let Some(path) = &to.metrics_file {
        if let Err(e) = ops::metrics::write(path, &metrics.text) {
            log::warn!("cannot write the metrics file {}: {e}", path.display());
        }
    }
    ops::push::push(to, &metrics);
}

/// Prints the man page (`man/asgard-stats.1` is this output, checked in).
fn print_man_page() -> i32 {
    let mut out = std::io::stdout().lock();
    match cli::man::render(&mut out).and_then(|()| std::io::Write::flush(&mut out)) {
        Ok(()) => exit::OK,
        Err(e) => {
            log::error!("cannot write the man page: {e}");
            exit::OTHER
        }
    }
}
