//! policy-svc on its own, as it runs in Kubernetes: configuration from the environment.

use service_kit::config::Settings;
use service_kit::shutdown::Shutdown;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = match Settings::from_process_env().and_then(|s| policy_svc::config::PolicyConfig::from_settings(&s)) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("policy-svc: bad configuration: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    service_kit::observe::init_tracing(config.server.log_json);
    let shutdown = Shutdown::new();
    shutdown.on_signal();
    match policy_svc::run(config, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "policy-svc stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
