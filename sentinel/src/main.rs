//! The `sentinel` binary: parse the command line, set up logging, hand over to the library.

use clap::Parser;

fn main() {
    // Usage errors exit 3 (error), not clap's 2, which means "critical" for snapshots.
    let cli = match sentinel::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                sentinel::exit::ERROR
            } else {
                sentinel::exit::OK
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    sentinel::logging::init(cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sentinel: cannot start the async runtime: {e}");
            std::process::exit(sentinel::exit::ERROR);
        }
    };
    let code = rt
        .block_on(sentinel::cli::dispatch(cli))
        .unwrap_or_else(|e| {
            eprintln!("sentinel: error: {e:#}");
            sentinel::exit::ERROR
        });
    drop(rt);
    std::process::exit(code);
}
