//! Who may call what, over real mTLS: every DeviceService RPC as every kind of caller, denial
//! before validation, and the connections the transport refuses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{AgentKey, Harness, bad_field, enrollment, reason};
use portcullis_proto::device::v1 as pb;
use portcullis_proto::device::v1::device_service_client::DeviceServiceClient;
use service_kit::identity::Role;
use service_kit::tls::TlsMaterial;
use test_support::TestPki;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};

/// Every RPC of DeviceService, written out here rather than read from the service's rule table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    RegisterDevice,
    GetDevice,
    ListDevices,
    CountDevices,
    SuspendDevice,
    UnsuspendDevice,
    DeactivateDevice,
    ActivateDevice,
    DeleteDevice,
    ListDeviceUsers,
    ListUserDevices,
    RemoveDeviceUser,
    CreateEnrollmentToken,
    VerifyDeviceAssertion,
    ReportSignals,
    ListDeviceEvents,
}

use Rpc::*;

const ALL: [Rpc; 16] = [
    RegisterDevice,
    GetDevice,
    ListDevices,
    CountDevices,
    SuspendDevice,
    UnsuspendDevice,
    DeactivateDevice,
    ActivateDevice,
    DeleteDevice,
    ListDeviceUsers,
    ListUserDevices,
    RemoveDeviceUser,
    CreateEnrollmentToken,
    VerifyDeviceAssertion,
    ReportSignals,
    ListDeviceEvents,
];

/// What operators with at least the viewer role may call.
const READS: &[Rpc] = &[
    GetDevice,
    ListDevices,
    CountDevices,
    ListDeviceUsers,
    ListUserDevices,
    ListDeviceEvents,
];
/// What operators with at least the operator role may call besides the reads.
const LIFECYCLE: &[Rpc] = &[
    SuspendDevice,
    UnsuspendDevice,
    DeactivateDevice,
    ActivateDevice,
    DeleteDevice,
    RemoveDeviceUser,
    CreateEnrollmentToken,
];
/// What the gateway may call.
const GATEWAY: &[Rpc] = &[RegisterDevice, VerifyDeviceAssertion, ReportSignals];

impl Rpc {
    fn name(self) -> String {
        format!("{self:?}")
    }

    /// Calls the RPC with an empty (all-defaults) request.
    async fn call_empty(self, client: &mut DeviceServiceClient<Channel>) -> Result<(), Status> {
        match self {
            RegisterDevice => client
                .register_device(pb::RegisterDeviceRequest::default())
                .await
                .map(drop),
            GetDevice => client.get_device(pb::GetDeviceRequest::default()).await.map(drop),
            ListDevices => client.list_devices(pb::ListDevicesRequest::default()).await.map(drop),
            CountDevices => client.count_devices(pb::CountDevicesRequest::default()).await.map(drop),
            SuspendDevice => client
                .suspend_device(pb::SuspendDeviceRequest::default())
                .await
                .map(drop),
            UnsuspendDevice => client
                .unsuspend_device(pb::UnsuspendDeviceRequest::default())
                .await
                .map(drop),
            DeactivateDevice => client
                .deactivate_device(pb::DeactivateDeviceRequest::default())
                .await
                .map(drop),
            ActivateDevice => client
                .activate_device(pb::ActivateDeviceRequest::default())
                .await
                .map(drop),
            DeleteDevice => client.delete_device(pb::DeleteDeviceRequest::default()).await.map(drop),
            ListDeviceUsers => client
                .list_device_users(pb::ListDeviceUsersRequest::default())
                .await
                .map(drop),
            ListUserDevices => client
                .list_user_devices(pb::ListUserDevicesRequest::default())
                .await
                .map(drop),
            RemoveDeviceUser => client
                .remove_device_user(pb::RemoveDeviceUserRequest::default())
                .await
                .map(drop),
            CreateEnrollmentToken => client
                .create_enrollment_token(pb::CreateEnrollmentTokenRequest::default())
                .await
                .map(drop),
            VerifyDeviceAssertion => client
                .verify_device_assertion(pb::VerifyDeviceAssertionRequest::default())
                .await
                .map(drop),
            ReportSignals => client
                .report_signals(pb::ReportSignalsRequest::default())
                .await
                .map(drop),
            ListDeviceEvents => client
                .list_device_events(pb::ListDeviceEventsRequest::default())
                .await
                .map(drop),
        }
    }
}

/// Calls every RPC with an empty request and checks each outcome against `allowed`: an allowed
/// call passes the guard (and is then validated, looked up or served); any other call is refused
/// with PERMISSION_DENIED before validation or lookup could say anything else.
async fn check_matrix(caller: &str, client: &mut DeviceServiceClient<Channel>, allowed: &[Rpc]) {
    let mut failures = Vec::new();
    for rpc in ALL {
        let result = rpc.call_empty(client).await;
        if allowed.contains(&rpc) {
            match &result {
                Ok(()) => {}
                Err(status) => match status.code() {
                    Code::InvalidArgument if !bad_field(status).is_empty() => {}
                    Code::InvalidArgument => failures.push(format!(
                        "{}: INVALID_ARGUMENT without a BadRequest field: {status:?}",
                        rpc.name()
                    )),
                    Code::NotFound => {}
                    _ => failures.push(format!("{}: allowed, but got {status:?}", rpc.name())),
                },
            }
        } else {
            match &result {
                Err(status) if status.code() == Code::PermissionDenied && reason(status) == "PERMISSION_DENIED" => {}
                other => failures.push(format!("{}: expected PERMISSION_DENIED, got {other:?}", rpc.name())),
            }
        }
    }
    assert!(failures.is_empty(), "{caller}:\n  {}", failures.join("\n  "));
}

/// Calls every RPC and expects each to be refused as unauthenticated.
async fn check_unauthenticated(caller: &str, client: &mut DeviceServiceClient<Channel>) {
    let mut failures = Vec::new();
    for rpc in ALL {
        match rpc.call_empty(client).await {
            Err(status) if status.code() == Code::Unauthenticated && reason(&status) == "UNAUTHENTICATED" => {}
            other => failures.push(format!("{}: expected UNAUTHENTICATED, got {other:?}", rpc.name())),
        }
    }
    assert!(failures.is_empty(), "{caller}:\n  {}", failures.join("\n  "));
}

fn concat(parts: &[&[Rpc]]) -> Vec<Rpc> {
    parts.concat()
}

#[test]
fn the_matrix_names_every_rpc_of_the_proto_exactly_once() {
    use prost::Message;
    let set = prost_types::FileDescriptorSet::decode(portcullis_proto::FILE_DESCRIPTOR_SET).unwrap();
    let service = set
        .file
        .iter()
        .flat_map(|f| &f.service)
        .find(|s| s.name() == "DeviceService")
        .unwrap();
    let mut in_proto: Vec<String> = service.method.iter().map(|m| m.name().to_owned()).collect();
    let mut in_matrix: Vec<String> = ALL.iter().map(|r| r.name()).collect();
    in_proto.sort();
    in_matrix.sort();
    assert_eq!(in_matrix, in_proto);
    // Every RPC belongs to exactly one group.
    for rpc in ALL {
        let groups = [READS, LIFECYCLE, GATEWAY].iter().filter(|g| g.contains(&rpc)).count();
        assert_eq!(groups, 1, "{rpc:?}");
    }
}

#[tokio::test]
async fn viewers_may_only_read() {
    let harness = Harness::start().await;
    check_matrix("viewer", &mut harness.viewer().await, READS).await;
}

#[tokio::test]
async fn operators_may_read_and_run_the_lifecycle() {
    let harness = Harness::start().await;
    check_matrix(
        "operator",
        &mut harness.operator(Role::Operator).await,
        &concat(&[READS, LIFECYCLE]),
    )
    .await;
}

#[tokio::test]
async fn admins_may_read_and_run_the_lifecycle_but_not_enroll() {
    let harness = Harness::start().await;
    check_matrix("admin", &mut harness.admin().await, &concat(&[READS, LIFECYCLE])).await;
}

#[tokio::test]
async fn the_gateway_may_only_enroll_verify_assertions_and_report_signals() {
    let harness = Harness::start().await;
    check_matrix("gateway", &mut harness.gateway().await, GATEWAY).await;
}

#[tokio::test]
async fn other_services_may_call_nothing() {
    let harness = Harness::start().await;
    for name in ["policy-svc", "session-svc", "device-svc", "gateway-2"] {
        check_matrix(name, &mut harness.service(name).await, &[]).await;
    }
}

#[tokio::test]
async fn an_operator_without_a_role_may_call_nothing() {
    let harness = Harness::start().await;
    let tls = custom_certificate(&harness.pki, &["spiffe://portcullis.local/operator/norole"], None);
    check_matrix("operator without a role", &mut harness.client_with(&tls).await, &[]).await;
}

#[tokio::test]
async fn an_operator_with_an_unknown_role_may_call_nothing() {
    let harness = Harness::start().await;
    let tls = custom_certificate(
        &harness.pki,
        &["spiffe://portcullis.local/operator/root"],
        Some("superuser"),
    );
    check_matrix(
        "operator with role superuser",
        &mut harness.client_with(&tls).await,
        &[],
    )
    .await;
}

#[tokio::test]
async fn the_custom_certificate_helper_makes_certificates_the_service_accepts() {
    // Guards the helper itself: with a known role its certificate gets exactly that role's rights,
    // so the refusals above come from the missing role, not from a broken certificate.
    let harness = Harness::start().await;
    let tls = custom_certificate(
        &harness.pki,
        &["spiffe://portcullis.local/operator/handmade"],
        Some("viewer"),
    );
    check_matrix("hand-made viewer", &mut harness.client_with(&tls).await, READS).await;
    let tls = custom_certificate(&harness.pki, &["spiffe://portcullis.local/svc/gateway"], None);
    check_matrix("hand-made gateway", &mut harness.client_with(&tls).await, GATEWAY).await;
}

#[tokio::test]
async fn identities_from_another_trust_domain_are_unauthenticated() {
    let harness = Harness::start().await;
    let admin = custom_certificate(
        &harness.pki,
        &["spiffe://elsewhere.example/operator/mallory"],
        Some("admin"),
    );
    check_unauthenticated("foreign admin", &mut harness.client_with(&admin).await).await;
    let gateway = custom_certificate(&harness.pki, &["spiffe://elsewhere.example/svc/gateway"], None);
    check_unauthenticated("foreign gateway", &mut harness.client_with(&gateway).await).await;
    // A trust domain that merely starts with ours is another trust domain.
    let lookalike = custom_certificate(&harness.pki, &["spiffe://portcullis.local.evil/svc/gateway"], None);
    check_unauthenticated("look-alike gateway", &mut harness.client_with(&lookalike).await).await;
}

#[tokio::test]
async fn certificates_without_exactly_one_usable_spiffe_id_are_unauthenticated() {
    let harness = Harness::start().await;
    let none = custom_certificate(&harness.pki, &[], Some("admin"));
    check_unauthenticated("no SPIFFE id", &mut harness.client_with(&none).await).await;
    let two = custom_certificate(
        &harness.pki,
        &[
            "spiffe://portcullis.local/operator/a",
            "spiffe://portcullis.local/svc/gateway",
        ],
        Some("admin"),
    );
    check_unauthenticated("two SPIFFE ids", &mut harness.client_with(&two).await).await;
    let unknown_kind = custom_certificate(&harness.pki, &["spiffe://portcullis.local/user/alice"], Some("admin"));
    check_unauthenticated("unknown kind", &mut harness.client_with(&unknown_kind).await).await;
    let nested = custom_certificate(&harness.pki, &["spiffe://portcullis.local/svc/gateway/x"], None);
    check_unauthenticated("nested service name", &mut harness.client_with(&nested).await).await;
}

#[tokio::test]
async fn a_denied_call_changes_nothing_even_with_a_valid_request() {
    let harness = Harness::start().await;
    let key = AgentKey::generate("k1");
    let device = harness
        .gateway()
        .await
        .register_device(enrollment("alice", "a1", &key))
        .await
        .unwrap()
        .into_inner();
    let id = device.device.unwrap().id;

    let mut viewer = harness.viewer().await;
    for result in [
        viewer
            .suspend_device(pb::SuspendDeviceRequest { device_id: id.clone() })
            .await
            .map(drop),
        viewer
            .deactivate_device(pb::DeactivateDeviceRequest { device_id: id.clone() })
            .await
            .map(drop),
        viewer
            .remove_device_user(pb::RemoveDeviceUserRequest {
                device_id: id.clone(),
                user_id: "alice".into(),
            })
            .await
            .map(drop),
        harness
            .gateway()
            .await
            .delete_device(pb::DeleteDeviceRequest { device_id: id.clone() })
            .await
            .map(drop),
        harness
            .admin()
            .await
            .register_device(enrollment("mallory", "a1", &AgentKey::generate("k2")))
            .await
            .map(drop),
    ] {
        let status = result.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert_eq!(reason(&status), "PERMISSION_DENIED");
    }

    let device = viewer
        .get_device(pb::GetDeviceRequest { device_id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        pb::DeviceStatus::try_from(device.status).unwrap(),
        pb::DeviceStatus::Active
    );
    let users: Vec<_> = device.users.iter().map(|u| u.user_id.as_str()).collect();
    assert_eq!(users, ["alice"]);
    let events = viewer
        .list_device_events(pb::ListDeviceEventsRequest {
            filter: format!("device_id = \"{id}\""),
            page_size: 200,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let types: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["device.enrollment.create", "device.user.add"]);
}

/// A CountDevices call over `channel`, or the error that stopped it (connecting included).
async fn count_over(channel: Result<Channel, tonic::transport::Error>) -> Result<i64, String> {
    let channel = channel.map_err(|e| format!("connect: {e}"))?;
    DeviceServiceClient::new(channel)
        .count_devices(pb::CountDevicesRequest::default())
        .await
        .map(|r| r.into_inner().count)
        .map_err(|s| format!("call: {s:?}"))
}

#[tokio::test]
async fn a_connection_without_a_client_certificate_is_refused() {
    let harness = Harness::start().await;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(harness.pki.ca.cert_pem()))
        .domain_name("localhost");
    let channel = match Endpoint::from_shared(format!("https://{}", harness.addr()))
        .unwrap()
        .tls_config(tls)
    {
        Ok(endpoint) => endpoint.connect().await,
        Err(e) => Err(e),
    };
    let result = count_over(channel).await;
    assert!(result.is_err(), "a client without a certificate was served: {result:?}");
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let harness = Harness::start().await;
    let other = TestPki::new();
    // Issued by another CA for a name that would be allowed, and the client trusts our server.
    for issued in [
        other.ca.issue_operator("test-admin", Role::Admin).unwrap(),
        other.ca.issue_service("gateway", &[]).unwrap(),
    ] {
        let tls = TlsMaterial::from_pem(harness.pki.ca.cert_pem(), issued.cert_pem, issued.key_pem);
        let result = count_over(test_support::channel(harness.addr(), &tls).await).await;
        assert!(result.is_err(), "a certificate from another CA was served: {result:?}");
    }
    // The same kind of certificate from our CA works, so the refusal is about the issuer.
    let ours = harness.pki.operator("test-admin", Role::Admin);
    assert_eq!(
        count_over(test_support::channel(harness.addr(), &ours).await).await,
        Ok(0)
    );
}

#[tokio::test]
async fn a_plaintext_connection_is_refused() {
    let harness = Harness::start().await;
    let channel = Endpoint::from_shared(format!("http://{}", harness.addr()))
        .unwrap()
        .connect()
        .await;
    let result = count_over(channel).await;
    assert!(result.is_err(), "a plaintext client was served: {result:?}");
}

#[tokio::test]
async fn a_caller_supplied_request_id_is_accepted() {
    let harness = Harness::start().await;
    let mut request = tonic::Request::new(pb::CountDevicesRequest::default());
    request
        .metadata_mut()
        .insert("x-request-id", "test-123".parse().unwrap());
    let count = harness
        .viewer()
        .await
        .count_devices(request)
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(count, 0);
    // An oversized id is replaced rather than refused.
    let mut request = tonic::Request::new(pb::CountDevicesRequest::default());
    request
        .metadata_mut()
        .insert("x-request-id", "x".repeat(500).parse().unwrap());
    harness.viewer().await.count_devices(request).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Hand-made client certificates. `DevCa` only issues well-formed service and operator
// certificates; these tests also need an operator with no role, an unknown role, a foreign trust
// domain, no or several SPIFFE ids. rcgen is not a dependency of device-svc, so the certificate
// is written as DER here and signed with the test CA's key (aws-lc-rs).
// ---------------------------------------------------------------------------------------------

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        assert!(len < 0x10000);
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn sequence(parts: &[Vec<u8>]) -> Vec<u8> {
    der(0x30, &parts.concat())
}

/// Splits the first DER element off `input`: (whole element, rest).
fn split_element(input: &[u8]) -> (&[u8], &[u8]) {
    let (header, len) = match input[1] {
        n if n < 0x80 => (2, n as usize),
        0x81 => (3, input[2] as usize),
        0x82 => (4, (input[2] as usize) << 8 | input[3] as usize),
        other => panic!("unsupported DER length byte {other:#x}"),
    };
    input.split_at(header + len)
}

fn content(element: &[u8]) -> &[u8] {
    let header = match element[1] {
        n if n < 0x80 => 2,
        0x81 => 3,
        0x82 => 4,
        other => panic!("unsupported DER length byte {other:#x}"),
    };
    &element[header..]
}

fn pem_decode(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap()
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// A client certificate signed by the test CA with the given URI SANs and subject Organization.
fn custom_certificate(pki: &TestPki, uris: &[&str], organization: Option<&str>) -> TlsMaterial {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    const ECDSA_WITH_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
    const ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];
    const KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
    const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
    const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
    const CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];

    let rng = SystemRandom::new();
    let ca_cert = pem_decode(pki.ca.cert_pem());
    let ca_key_pem = std::fs::read_to_string(pki.dir.path().join("service-ca.key")).unwrap();
    let ca_key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pem_decode(&ca_key_pem)).unwrap();

    // The issuer is the CA certificate's subject, byte for byte: the sixth element of its
    // TBSCertificate (version, serial, signature, issuer, validity, subject).
    let (tbs, _) = split_element(content(&ca_cert));
    let mut rest = content(tbs);
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let (field, next) = split_element(rest);
        fields.push(field);
        rest = next;
    }
    assert_eq!(fields[0][0], 0xa0, "the CA certificate is v3");
    let issuer = fields[5].to_vec();

    let leaf_pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let leaf = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, leaf_pkcs8.as_ref()).unwrap();

    let algorithm = sequence(&[der(0x06, ECDSA_WITH_SHA256)]);
    let mut serial = uuid::Uuid::new_v4().as_bytes().to_vec();
    serial[0] = (serial[0] & 0x7f) | 0x01;
    let attribute = |oid: &[u8], value: &str| der(0x31, &sequence(&[der(0x06, oid), der(0x0c, value.as_bytes())]));
    let mut subject = Vec::new();
    if let Some(organization) = organization {
        subject.push(attribute(ORGANIZATION, organization));
    }
    subject.push(attribute(COMMON_NAME, "hand-made test certificate"));

    let mut extensions = vec![
        sequence(&[
            der(0x06, KEY_USAGE),
            der(0x01, &[0xff]),
            der(0x04, &der(0x03, &[0x07, 0x80])),
        ]),
        sequence(&[
            der(0x06, EXT_KEY_USAGE),
            der(0x04, &sequence(&[der(0x06, CLIENT_AUTH)])),
        ]),
    ];
    let mut names: Vec<Vec<u8>> = uris.iter().map(|uri| der(0x86, uri.as_bytes())).collect();
    if names.is_empty() {
        names.push(der(0x82, b"client.portcullis.test"));
    }
    extensions.push(sequence(&[der(0x06, SUBJECT_ALT_NAME), der(0x04, &sequence(&names))]));

    let mut public_key = vec![0x00];
    public_key.extend_from_slice(leaf.public_key().as_ref());
    let tbs = sequence(&[
        der(0xa0, &der(0x02, &[0x02])),
        der(0x02, &serial),
        algorithm.clone(),
        issuer,
        sequence(&[der(0x17, b"200101000000Z"), der(0x17, b"491231235959Z")]),
        sequence(&subject),
        sequence(&[
            sequence(&[der(0x06, EC_PUBLIC_KEY), der(0x06, PRIME256V1)]),
            der(0x03, &public_key),
        ]),
        der(0xa3, &sequence(&extensions)),
    ]);
    let signature = ca_key.sign(&rng, &tbs).unwrap();
    let mut signature_bits = vec![0x00];
    signature_bits.extend_from_slice(signature.as_ref());
    let certificate = sequence(&[tbs, algorithm, der(0x03, &signature_bits)]);

    TlsMaterial::from_pem(
        pki.ca.cert_pem(),
        pem_encode("CERTIFICATE", &certificate),
        pem_encode("PRIVATE KEY", leaf_pkcs8.as_ref()),
    )
}
