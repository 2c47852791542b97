//! The `sentinel` binary: parse the command line, set up logging, hand over to the library.

use clap::Parser;

fn main() {
    let cli = sentinel::cli::Cli::parse();
    sentinel::logging::init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sentinel: cannot start the async runtime: {e}");
            std::process::exit(sentinel::cli::exit::ERROR);
        }
    };
    let code = rt
        .block_on(sentinel::cli::dispatch(cli))
        .unwrap_or_else(|e| {
            eprintln!("sentinel: error: {e:#}");
            sentinel::cli::exit::ERROR
        });
    drop(rt);
    std::process::exit(code);
}
