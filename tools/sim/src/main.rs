use clap::Parser;
use sim::{Cli, report, simulate, sweep};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cli.params.validate()?;
    match &cli.sweep {
        Some(spec) => {
            let rows = sweep(&cli.params, spec)?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", report::assumptions(&cli.params));
                println!("\nSweep of {spec} (everything else as above):\n");
                print!("{}", report::sweep_table(&rows));
            }
        }
        None => {
            let c = simulate(&cli.params);
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                print!("{}", report::text(&c));
            }
        }
    }
    Ok(())
}
