//! What `portcullis up` prints once the suite is serving: addresses, files, and grpcurl commands
//! ready to paste.

use std::fmt::Write as _;
use std::path::Path;

use crate::data_dir::{ADMIN_OPERATOR, DataDir, VIEWER_OPERATOR};
use crate::default_policy::TEST_CLIENT_ID;
use crate::default_scep::DefaultScep;
use crate::suite::{DEVICE_SVC, Member, PKI_SVC, POLICY_SVC, PortBase, SESSION_SVC, pki_http};

/// The banner's last line; scripts and tests wait for it.
pub const READY_LINE: &str = "Press Ctrl-C to stop.";

/// The banner for the `running` members.
pub fn render(data: &DataDir, base: PortBase, running: &[Member], scep: &DefaultScep) -> String {
    let mut out = String::from("Portcullis is up.\n\n");
    // Writing into a String cannot fail, here and below.
    for member in running {
        let ports = member.ports(base);
        let _ = writeln!(
            out,
            "  {:<12} gRPC (mTLS) {}   admin (health, metrics) {}",
            member.name, ports.grpc, ports.admin
        );
    }
    let _ = writeln!(
        out,
        "  {:<12} SCEP and CRLs (plain HTTP) {}",
        PKI_SVC.name,
        pki_http(base)
    );
    let _ = writeln!(out, "  {:<12} {}", "data dir", data.root().display());
    let _ = writeln!(out, "  {:<12} {}", "service CA", data.ca().display());

    let device = DEVICE_SVC.ports(base);
    let grpc = format!("localhost:{}", device.grpc.port());
    let admin = format!("localhost:{}", device.admin.port());
    let as_admin = credentials(data, ADMIN_OPERATOR);
    let as_viewer = credentials(data, VIEWER_OPERATOR);
    let service = device_svc::SERVICE_NAME;
    let health_protoset = shell_quote(data.health_protoset());
    let sessions = format!("localhost:{}", SESSION_SVC.ports(base).grpc.port());
    let pki = format!("localhost:{}", PKI_SVC.ports(base).grpc.port());
    let scep_url = &scep.url;
    let challenge = &scep.challenge;
    let crl_url = format!("http://localhost:{}/crl/device.crl", pki_http(base).port());
    let policy = format!("localhost:{}", POLICY_SVC.ports(base).grpc.port());
    let policy_service = "portcullis.policy.v1.PolicyService";

    let _ = write!(
        out,
        "
Try it with grpcurl as the admin operator:

  grpcurl {as_admin} {grpc} list
  grpcurl {as_admin} {grpc} describe {service}
  grpcurl {as_admin} {grpc} {service}/ListDevices

Create a user and a group in session-svc, then follow session revocations (suspending a device
in device-svc ends its FastPass sessions, and they appear here):

  grpcurl {as_admin} -d '{{\"login\": \"alice\", \"email\": \"alice@example.com\"}}' {sessions} portcullis.session.v1.DirectoryService/CreateUser
  grpcurl {as_admin} -d '{{\"name\": \"Engineering\"}}' {sessions} portcullis.session.v1.DirectoryService/CreateGroup
  grpcurl {as_admin} -d '{{\"fromNow\": true}}' {sessions} portcullis.session.v1.SessionService/WatchRevocations

Enroll a device certificate through SCEP, as an MDM would (any SCEP client works):

  SCEP URL:          {scep_url}
  static challenge:  {challenge}

  scepclient -server-url {scep_url} -challenge '{challenge}' -private-key device.key -certificate device.pem -cn 'managementAttestation 0001'

Then list what the device CA issued, revoke it, and read the CRL:

  grpcurl {as_admin} {pki} portcullis.pki.v1.PkiService/ListCertificates
  grpcurl {as_admin} -d '{{\"serialNumber\": \"<serial>\", \"reason\": \"CERTIFICATE_REVOCATION_REASON_KEY_COMPROMISE\"}}' {pki} portcullis.pki.v1.PkiService/RevokeCertificate
  curl -s {crl_url} | openssl crl -inform DER -noout -text

Sign-in policy: export it as YAML, simulate a sign-in from an unmanaged laptop (the policy asks for
a password and TOTP, and says rule by rule and condition by condition why), and apply an
edited document (with `dryRun` set to true it only lists the changes):

  grpcurl {as_viewer} -d '{{\"format\": \"DOCUMENT_FORMAT_YAML\"}}' {policy} {policy_service}/ExportConfiguration
  grpcurl {as_viewer} -d '{{\"context\": {{\"clientId\": \"{TEST_CLIENT_ID}\", \"user\": {{\"id\": \"alice\"}}, \"network\": {{\"clientAddress\": \"203.0.113.7\"}}, \"device\": {{\"id\": \"laptop\", \"registered\": true, \"platform\": \"PLATFORM_MACOS\"}}}}}}' {policy} {policy_service}/Simulate
  grpcurl {as_admin} -d '{{\"document\": \"<document>\"}}' {policy} {policy_service}/ApplyConfiguration

The viewer operator may read but not change anything; this is refused with PermissionDenied:

  grpcurl {as_viewer} -d '{{\"device_id\": \"any\"}}' {grpc} {service}/SuspendDevice

Health and metrics are on the plaintext admin port (it serves no reflection, so grpcurl reads
the health service from a protoset):

  grpcurl -plaintext -protoset {health_protoset} {admin} grpc.health.v1.Health/Check
  curl http://{admin}/metrics

{READY_LINE}
"
    );
    out
}

/// `-cacert … -cert … -key …` for the certificate with stem `stem`.
fn credentials(data: &DataDir, stem: &str) -> String {
    let files = data.tls(stem);
    format!(
        "-cacert {} -cert {} -key {}",
        shell_quote(&files.ca),
        shell_quote(&files.cert),
        shell_quote(&files.key)
    )
}

/// `path` as one shell word, quoted only when it needs to be, so commands paste as they are.
fn shell_quote(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:,@%=".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_stay_as_they_are() {
        assert_eq!(
            shell_quote(Path::new("/srv/portcullis-data/pki/service-ca.pem")),
            "/srv/portcullis-data/pki/service-ca.pem"
        );
    }

    #[test]
    fn paths_with_spaces_or_quotes_become_one_shell_word() {
        assert_eq!(
            shell_quote(Path::new("/home/me/my data/ca.pem")),
            "'/home/me/my data/ca.pem'"
        );
        assert_eq!(shell_quote(Path::new("/it's")), r"'/it'\''s'");
    }
}
