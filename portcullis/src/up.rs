//! `portcullis up`: prepares the data directory, starts every service of the suite on its
//! planned ports, prints the banner once all serve, and stops them all on Ctrl-C or SIGTERM.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use device_svc::config::DeviceConfig;
use pki_svc::PkiListeners;
use pki_svc::config::PkiConfig;
use policy_svc::config::PolicyConfig;
use service_kit::config::{ConfigError, Settings};
use service_kit::shutdown::Shutdown;
use session_svc::config::SessionConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{Id, JoinSet};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::banner;
use crate::cli::UpOptions;
use crate::data_dir::{DataDir, DataDirError};
use crate::default_policy::{self, DefaultPolicyError};
use crate::default_scep::{self, DefaultScep, DefaultScepError};
use crate::identities::{self, IdentityError};
use crate::suite::{DEVICE_SVC, Member, PKI_SVC, POLICY_SVC, PortBase, SESSION_SVC, pki_http};

/// How long the suite may take to serve, migrations included, before `up` gives up.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often readiness is checked meanwhile.
const READY_POLL: Duration = Duration::from_millis(50);

type BoxError = Box<dyn StdError + Send + Sync>;

/// Why `up` failed.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    /// The data directory could not be prepared.
    #[error("cannot prepare the data dir: {0}")]
    DataDir(#[from] DataDirError),
    /// A service's settings were refused.
    #[error("{service}: bad configuration: {source}")]
    Config {
        /// The service.
        service: &'static str,
        /// Why.
        #[source]
        source: ConfigError,
    },
    /// A port could not be bound.
    #[error(
        "{service} cannot listen on {addr}: {source}; is another `portcullis up` running? \
         --port-base chooses other ports"
    )]
    Bind {
        /// The service.
        service: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A service stopped with an error.
    #[error("{service} stopped: {source}")]
    Service {
        /// The service.
        service: &'static str,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A service stopped although nobody asked it to.
    #[error("{0} stopped unexpectedly")]
    StoppedUnexpectedly(&'static str),
    /// A service's task panicked.
    #[error("{service} crashed: {source}")]
    Crashed {
        /// The service.
        service: &'static str,
        /// The panic.
        #[source]
        source: tokio::task::JoinError,
    },
    /// A service did not report SERVING on its admin port in time.
    #[error("{service} did not report SERVING on {admin} within {} s", READY_TIMEOUT.as_secs())]
    NotReady {
        /// The service.
        service: &'static str,
        /// Its admin address.
        admin: SocketAddr,
    },
    /// An identity could not be issued through pki-svc.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The default SCEP integration could not be made.
    #[error(transparent)]
    DefaultScep(#[from] DefaultScepError),
    /// The default sign-in configuration could not be applied.
    #[error(transparent)]
    DefaultPolicy(#[from] DefaultPolicyError),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Runs `up` to completion: 0 after a requested stop, 1 when anything failed.
pub fn main(options: UpOptions) -> ExitCode {
    service_kit::observe::init_tracing(false);
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(UpError::Runtime)
        .and_then(|runtime| runtime.block_on(up(options)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The running services, by task, so a crash can be named.
struct Suite {
    tasks: JoinSet<(&'static str, Result<(), BoxError>)>,
    names: HashMap<Id, &'static str>,
    running: Vec<Member>,
}

impl Suite {
    fn spawn<E>(&mut self, member: Member, serve: impl Future<Output = Result<(), E>> + Send + 'static)
    where
        E: StdError + Send + Sync + 'static,
    {
        let handle = self
            .tasks
            .spawn(async move { (member.name, serve.await.map_err(BoxError::from)) });
        self.names.insert(handle.id(), member.name);
        self.running.push(member);
    }
}

async fn up(options: UpOptions) -> Result<(), UpError> {
    let UpOptions { data_dir, port_base } = options;
    // Listen for Ctrl-C first, so a stop requested during start-up still ends in a clean exit.
    let shutdown = Shutdown::new();
    shutdown.on_signal();
    let data = DataDir::prepare(&data_dir)?;
    // Every configuration is checked before any port is bound, and every port is bound before any
    // service starts, so a failure leaves nothing half-started behind.
    let device_config = device_config(&data, port_base)?;
    let session_config = session_config(&data, port_base)?;
    let pki_config = pki_config(&data, port_base)?;
    let policy_config = policy_config(&data, port_base)?;
    let (device_listener, device_admin_listener) = bind(DEVICE_SVC, port_base).await?;
    let (session_listener, session_admin_listener) = bind(SESSION_SVC, port_base).await?;
    let (pki_listener, pki_admin_listener) = bind(PKI_SVC, port_base).await?;
    let pki_http_listener = bind_one(PKI_SVC, pki_http(port_base)).await?;
    let (policy_listener, policy_admin_listener) = bind(POLICY_SVC, port_base).await?;

    let mut suite = Suite {
        tasks: JoinSet::new(),
        names: HashMap::new(),
        running: Vec::new(),
    };
    // pki-svc starts first: it issues the other members' identities (see identities.rs), and
    // they start once their certificates are written.
    let (identities_issued, identities) = watch::channel(false);
    suite.spawn(
        PKI_SVC,
        pki_svc::serve_on(
            pki_config,
            PkiListeners {
                grpc: pki_listener,
                admin: pki_admin_listener,
                http: pki_http_listener,
            },
            shutdown.clone(),
        ),
    );
    let gate = (identities.clone(), shutdown.clone());
    let device_shutdown = shutdown.clone();
    suite.spawn(DEVICE_SVC, async move {
        if !after_identities(gate).await {
            return Ok(());
        }
        device_svc::serve_on(device_config, device_listener, device_admin_listener, device_shutdown).await
    });
    let gate = (identities.clone(), shutdown.clone());
    let policy_shutdown = shutdown.clone();
    suite.spawn(POLICY_SVC, async move {
        if !after_identities(gate).await {
            return Ok(());
        }
        policy_svc::serve_on(policy_config, policy_listener, policy_admin_listener, policy_shutdown).await
    });
    let gate = (identities, shutdown.clone());
    let session_shutdown = shutdown.clone();
    suite.spawn(SESSION_SVC, async move {
        if !after_identities(gate).await {
            return Ok(());
        }
        session_svc::serve_on(
            session_config,
            session_listener,
            session_admin_listener,
            session_shutdown,
        )
        .await
    });

    let members = suite.running.clone();
    let data = &data;
    let ready = async move {
        wait_until_serving(&[PKI_SVC], port_base).await?;
        identities::issue_missing(data, port_base).await?;
        let _ = identities_issued.send(true);
        wait_until_serving(&members, port_base).await?;
        default_policy::ensure(data, port_base).await?;
        Ok::<DefaultScep, UpError>(default_scep::ensure(data, port_base).await?)
    };
    supervise(suite, data, port_base, &shutdown, ready).await
}

/// Waits until the identities are issued (true) or the suite is stopping (false).
async fn after_identities((mut issued, shutdown): (watch::Receiver<bool>, Shutdown)) -> bool {
    tokio::select! {
        result = issued.wait_for(|issued| *issued) => result.is_ok(),
        () = shutdown.triggered() => false,
    }
}

/// device-svc's settings, with the session-svc and pki-svc it sends revocations to (pki-svc's
/// wait in its outbox until pki-svc runs).
///
/// The process environment is not read: `up` is meant to run the same everywhere.
fn device_config(data: &DataDir, base: PortBase) -> Result<DeviceConfig, UpError> {
    let mut settings = member_settings(DEVICE_SVC, data, base);
    settings
        .set("session_svc_url", SESSION_SVC.url(base))
        .set("pki_svc_url", PKI_SVC.url(base));
    DeviceConfig::from_settings(&settings).map_err(|source| UpError::Config {
        service: DEVICE_SVC.name,
        source,
    })
}

/// The settings every member takes from the plan and the data directory: its ports, its
/// certificate, its database and the page-token secret.
fn member_settings(member: Member, data: &DataDir, base: PortBase) -> Settings {
    let ports = member.ports(base);
    let tls = data.tls(member.name);
    let mut settings = Settings::default();
    settings
        .set("listen", ports.grpc.to_string())
        .set("admin_listen", ports.admin.to_string())
        .set("tls_ca", tls.ca.display().to_string())
        .set("tls_cert", tls.cert.display().to_string())
        .set("tls_key", tls.key.display().to_string())
        .set("database_url", data.database_url(member.name))
        .set("page_token_secret", data.page_token_secret());
    settings
}

/// session-svc's settings, with the TOTP key from the data directory.
fn session_config(data: &DataDir, base: PortBase) -> Result<SessionConfig, UpError> {
    let mut settings = member_settings(SESSION_SVC, data, base);
    settings.set("totp_encryption_key", data.totp_encryption_key());
    SessionConfig::from_settings(&settings).map_err(|source| UpError::Config {
        service: SESSION_SVC.name,
        source,
    })
}

/// policy-svc's settings: only what every member takes.
fn policy_config(data: &DataDir, base: PortBase) -> Result<PolicyConfig, UpError> {
    let settings = member_settings(POLICY_SVC, data, base);
    PolicyConfig::from_settings(&settings).map_err(|source| UpError::Config {
        service: POLICY_SVC.name,
        source,
    })
}

/// pki-svc's settings: the service CA it issues identities with, the key sealing the device CA,
/// and its SCEP/CRL listener.
fn pki_config(data: &DataDir, base: PortBase) -> Result<PkiConfig, UpError> {
    let mut settings = member_settings(PKI_SVC, data, base);
    let (service_ca_cert, service_ca_key) = data.service_ca_files();
    let http = pki_http(base);
    settings
        .set("ca_encryption_key", data.ca_encryption_key())
        .set("service_ca_cert", service_ca_cert.display().to_string())
        .set("service_ca_key", service_ca_key.display().to_string())
        .set("http_listen", http.to_string())
        .set("public_url", format!("http://localhost:{}", http.port()));
    PkiConfig::from_settings(&settings).map_err(|source| UpError::Config {
        service: PKI_SVC.name,
        source,
    })
}

/// Binds `member`'s gRPC and admin listeners.
async fn bind(member: Member, base: PortBase) -> Result<(TcpListener, TcpListener), UpError> {
    let ports = member.ports(base);
    Ok((
        bind_one(member, ports.grpc).await?,
        bind_one(member, ports.admin).await?,
    ))
}

/// Binds one of `member`'s listeners.
async fn bind_one(member: Member, addr: SocketAddr) -> Result<TcpListener, UpError> {
    TcpListener::bind(addr).await.map_err(|source| UpError::Bind {
        service: member.name,
        addr,
        source,
    })
}

/// Prints the banner once `ready` resolves (every service serves, the default SCEP integration
/// exists), then waits for all of them to stop. The first service to fail, or a failure of
/// `ready`, stops the others, and its error is returned.
async fn supervise(
    mut suite: Suite,
    data: &DataDir,
    base: PortBase,
    shutdown: &Shutdown,
    ready: impl Future<Output = Result<DefaultScep, UpError>>,
) -> Result<(), UpError> {
    tokio::pin!(ready);
    let stopping = shutdown.triggered();
    tokio::pin!(stopping);
    let mut waiting_for_ready = true;
    let mut stop_requested = false;
    let mut failure: Option<UpError> = None;
    loop {
        tokio::select! {
            // Biased so a stop request is seen before the services it stops.
            biased;
            () = &mut stopping, if !stop_requested => {
                stop_requested = true;
                waiting_for_ready = false;
            }
            joined = suite.tasks.join_next_with_id() => {
                let Some(joined) = joined else { break };
                // However it ended, a service that stops before the suite is ready means it
                // never will be.
                waiting_for_ready = false;
                let error = match joined {
                    Ok((_, (service, Ok(())))) => {
                        tracing::info!(service, "stopped");
                        (!stop_requested).then_some(UpError::StoppedUnexpectedly(service))
                    }
                    Ok((_, (service, Err(source)))) => Some(UpError::Service { service, source }),
                    Err(source) => {
                        let service = suite.names.get(&source.id()).copied().unwrap_or("a service");
                        Some(UpError::Crashed { service, source })
                    }
                };
                if let Some(error) = error {
                    tracing::error!(error = %error, "stopping the suite");
                    failure.get_or_insert(error);
                    shutdown.trigger();
                }
            }
            result = &mut ready, if waiting_for_ready => {
                waiting_for_ready = false;
                match result {
                    Ok(scep) => print!("{}", banner::render(data, base, &suite.running, &scep)),
                    Err(error) => {
                        tracing::error!(error = %error, "stopping the suite");
                        failure.get_or_insert(error);
                        shutdown.trigger();
                    }
                }
            }
        }
    }
    match failure {
        Some(error) => Err(error),
        None => {
            tracing::info!("all services stopped");
            Ok(())
        }
    }
}

/// Resolves once every member reports SERVING over grpc.health.v1 on its admin port, which
/// happens after its database is migrated.
async fn wait_until_serving(members: &[Member], base: PortBase) -> Result<(), UpError> {
    for member in members {
        let admin = member.ports(base).admin;
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        while !is_serving(admin).await {
            if tokio::time::Instant::now() >= deadline {
                return Err(UpError::NotReady {
                    service: member.name,
                    admin,
                });
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }
    Ok(())
}

async fn is_serving(admin: SocketAddr) -> bool {
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(format!("http://{admin}")) else {
        return false;
    };
    let endpoint = endpoint
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(1));
    let Ok(channel) = endpoint.connect().await else {
        return false;
    };
    // The overall status (""): SERVING once every service in the process serves.
    match HealthClient::new(channel)
        .check(HealthCheckRequest { service: String::new() })
        .await
    {
        Ok(response) => response.get_ref().status == ServingStatus::Serving as i32,
        Err(_) => false,
    }
}
