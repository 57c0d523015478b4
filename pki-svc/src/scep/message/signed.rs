//! The outer SignedData of a pkiMessage (RFC 8894 §3.2): one signer whose signed attributes carry
//! the SCEP fields, signed with RSA PKCS#1 v1.5.

use std::time::SystemTime;

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::AssociatedOid;
use const_oid::db::{rfc5911, rfc5912};
use der::asn1::{OctetString, OctetStringRef, SetOfVec};
use der::{Any, Decode, Encode};
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::time::Time;

use super::algorithms::{RsaSigner, is_rsa, verify_rsa};
use super::attributes::{self, SignedAttributes};
use super::{BuildError, DigestAlgorithm};

/// A decoded pkiMessage: a SignedData with exactly one SignerInfo.
pub(crate) struct SignedMessage {
    signed_data: SignedData,
    signer: SignerInfo,
}

/// Why a SignerInfo does not verify.
#[derive(Debug)]
pub(crate) enum VerifyError {
    /// A digest, signature or key algorithm SCEP does not use here (failInfo badAlg).
    UnsupportedAlgorithm(String),
    /// A missing or wrong contentType or messageDigest, or a bad signature (failInfo badMessageCheck).
    BadMessageCheck(String),
}

impl SignedMessage {
    /// Decodes a DER ContentInfo holding a SignedData with exactly one signer.
    pub(crate) fn decode(der: &[u8]) -> Result<Self, String> {
        let content_info = ContentInfo::from_der(der).map_err(|error| format!("not a DER ContentInfo: {error}"))?;
        if content_info.content_type != rfc5911::ID_SIGNED_DATA {
            return Err(format!("content type {} is not signedData", content_info.content_type));
        }
        let signed_data: SignedData = content_info
            .content
            .decode_as()
            .map_err(|error| format!("not a DER SignedData: {error}"))?;
        let mut signers = signed_data.signer_infos.0.iter();
        let signer = match (signers.next(), signers.next()) {
            (Some(signer), None) => signer.clone(),
            _ => return Err(format!("{} signers instead of one", signed_data.signer_infos.0.len())),
        };
        Ok(Self { signed_data, signer })
    }

    /// The signer's signed attributes, which SCEP requires.
    pub(crate) fn signed_attributes(&self) -> Result<SignedAttributes<'_>, String> {
        self.signer
            .signed_attrs
            .as_ref()
            .map(SignedAttributes)
            .ok_or_else(|| "the signer has no signed attributes".to_owned())
    }

    /// The signer's digest algorithm, if it is one SCEP uses.
    pub(crate) fn digest_algorithm(&self) -> Option<DigestAlgorithm> {
        DigestAlgorithm::from_oid(&self.signer.digest_alg.oid)
    }

    /// The certificate among the message's certificates that the SignerInfo names.
    pub(crate) fn signer_certificate(&self) -> Option<&Certificate> {
        let certificates = self.signed_data.certificates.as_ref()?;
        certificates
            .0
            .iter()
            .filter_map(|choice| match choice {
                CertificateChoices::Certificate(certificate) => Some(certificate),
                CertificateChoices::Other(_) => None,
            })
            .find(|certificate| match &self.signer.sid {
                SignerIdentifier::IssuerAndSerialNumber(issuer_and_serial) => {
                    is_issuer_and_serial_of(issuer_and_serial, certificate)
                }
                SignerIdentifier::SubjectKeyIdentifier(key_identifier) => {
                    is_key_identifier_of(key_identifier, certificate)
                }
            })
    }

    /// Checks the contentType and messageDigest attributes and the signature by `signer`'s RSA
    /// key over the signed attributes; returns the encapsulated content (empty if absent).
    pub(crate) fn verify(&self, signer: &Certificate) -> Result<Vec<u8>, VerifyError> {
        let digest = self.digest_algorithm().ok_or_else(|| {
            VerifyError::UnsupportedAlgorithm(format!("digest algorithm {}", self.signer.digest_alg.oid))
        })?;
        let signature_algorithm = self.signer.signature_algorithm.oid;
        if signature_algorithm != rfc5912::RSA_ENCRYPTION && signature_algorithm != digest.rsa_signature_oid() {
            return Err(VerifyError::UnsupportedAlgorithm(format!(
                "signature algorithm {signature_algorithm} with digest {digest:?}"
            )));
        }
        let public_key = &signer.tbs_certificate.subject_public_key_info;
        if !is_rsa(public_key) {
            return Err(VerifyError::UnsupportedAlgorithm(format!(
                "signer key algorithm {}",
                public_key.algorithm.oid
            )));
        }
        let bad = |detail: &str| VerifyError::BadMessageCheck(detail.to_owned());
        let signed_attributes = self
            .signer
            .signed_attrs
            .as_ref()
            .ok_or_else(|| bad("no signed attributes"))?;
        let attributes = SignedAttributes(signed_attributes);

        let encapsulated = &self.signed_data.encap_content_info;
        if attributes.oid(rfc5911::ID_CONTENT_TYPE) != Some(encapsulated.econtent_type) {
            return Err(bad(
                "the contentType attribute is missing or differs from the content's type",
            ));
        }
        let content = match &encapsulated.econtent {
            Some(econtent) => econtent
                .decode_as::<OctetStringRef<'_>>()
                .map_err(|_| bad("the encapsulated content is not an OCTET STRING"))?
                .as_bytes()
                .to_vec(),
            None => Vec::new(),
        };
        let message_digest = attributes
            .octets(rfc5911::ID_MESSAGE_DIGEST)
            .ok_or_else(|| bad("no messageDigest attribute"))?;
        if message_digest != digest.digest(&content) {
            return Err(bad("the messageDigest attribute does not match the content"));
        }
        // RFC 5652 §5.4: the signature covers the DER of the attributes as a SET OF, which is
        // what the decoded (and so DER-sorted) set encodes to.
        let signed = signed_attributes
            .to_der()
            .map_err(|_| bad("the signed attributes cannot be encoded"))?;
        if !verify_rsa(digest, public_key, &signed, self.signer.signature.as_bytes()) {
            return Err(bad("the signature does not verify"));
        }
        Ok(content)
    }
}

/// Whether an IssuerAndSerialNumber names `certificate`.
pub(crate) fn is_issuer_and_serial_of(issuer_and_serial: &IssuerAndSerialNumber, certificate: &Certificate) -> bool {
    issuer_and_serial.issuer == certificate.tbs_certificate.issuer
        && issuer_and_serial.serial_number == certificate.tbs_certificate.serial_number
}

/// Whether a subjectKeyIdentifier names `certificate` (through its SKI extension).
pub(crate) fn is_key_identifier_of(key_identifier: &SubjectKeyIdentifier, certificate: &Certificate) -> bool {
    let Some(extensions) = &certificate.tbs_certificate.extensions else {
        return false;
    };
    extensions
        .iter()
        .filter(|extension| extension.extn_id == SubjectKeyIdentifier::OID)
        .filter_map(|extension| SubjectKeyIdentifier::from_der(extension.extn_value.as_bytes()).ok())
        .any(|own| own == *key_identifier)
}

/// A DER ContentInfo holding a SignedData over `content` (id-data; omitted if `None`) with one
/// signer, `signer_certificate`, whose signed attributes are contentType, signingTime
/// (`signed_at`), messageDigest and `scep_attributes`.
pub(crate) fn build(
    content: Option<&[u8]>,
    digest: DigestAlgorithm,
    scep_attributes: Vec<Attribute>,
    signer_certificate: &Certificate,
    signer: &dyn RsaSigner,
    signed_at: SystemTime,
) -> Result<Vec<u8>, BuildError> {
    // With no content the digest is that of the empty string, as for any detached content.
    let message_digest = digest.digest(content.unwrap_or_default());
    let signing_time =
        Time::try_from(signed_at).map_err(|error| BuildError::Encoding(format!("signingTime: {error}")))?;
    let mut signed_attributes = SetOfVec::new();
    signed_attributes.insert(attributes::single(rfc5911::ID_CONTENT_TYPE, &rfc5911::ID_DATA)?)?;
    signed_attributes.insert(attributes::single(rfc5911::ID_SIGNING_TIME, &signing_time)?)?;
    signed_attributes.insert(attributes::octets(rfc5911::ID_MESSAGE_DIGEST, &message_digest)?)?;
    for attribute in scep_attributes {
        signed_attributes.insert(attribute)?;
    }
    let signature = signer.sign_pkcs1(digest, &signed_attributes.to_der()?)?;

    let digest_algorithm = AlgorithmIdentifierOwned {
        oid: digest.oid(),
        parameters: None,
    };
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: signer_certificate.tbs_certificate.issuer.clone(),
            serial_number: signer_certificate.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: digest_algorithm.clone(),
        signed_attrs: Some(signed_attributes),
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: rfc5912::RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let econtent = content
        .map(|content| OctetString::new(content).and_then(|octets| Any::encode_from(&octets)))
        .transpose()?;
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![digest_algorithm])?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: rfc5911::ID_DATA,
            econtent,
        },
        certificates: Some(CertificateSet(SetOfVec::try_from(vec![
            CertificateChoices::Certificate(signer_certificate.clone()),
        ])?)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info])?),
    };
    let content_info = ContentInfo {
        content_type: rfc5911::ID_SIGNED_DATA,
        content: Any::encode_from(&signed_data)?,
    };
    Ok(content_info.to_der()?)
}
