//! `sentinel run`: wires collect -> enrich -> detect -> sinks for a live session.

use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct RunArgs {}

pub async fn run(_config: Config, _args: RunArgs) -> anyhow::Result<i32> {
    anyhow::bail!("sentinel run: being built (foundation issue)")
}
