//! The `webcluster-operator` command: print the CRD, render offline, or run the controller.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use webcluster::render;

#[derive(Parser)]
#[command(name = "webcluster-operator", version, about = "Runs PHP web applications on many nodes from one WebCluster manifest")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the WebCluster CustomResourceDefinition as YAML.
    Crd,
    /// Print every child object of the WebClusters in a file, offline.
    Render {
        /// File with WebCluster manifests, or `-` for standard input.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => render::crd_yaml().map_err(|e| e.to_string()),
        Command::Render { file } => read_input(&file).and_then(|yaml| render::render(&yaml).map_err(|e| e.to_string())),
    };
    match result {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn read_input(file: &PathBuf) -> Result<String, String> {
    if file.as_os_str() == "-" {
        let mut input = String::new();
        std::io::stdin().read_to_string(&mut input).map_err(|e| format!("cannot read standard input: {e}"))?;
        return Ok(input);
    }
    std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
}
