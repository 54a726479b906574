use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    ensemble::cli::main().await
}
