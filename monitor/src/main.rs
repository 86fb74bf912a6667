use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = monitor::cli::Cli::parse();
    eprintln!("{cli:?}: not implemented yet");
    std::process::ExitCode::from(2)
}
