//! Single-valued CMS attributes: the SCEP ones (RFC 8894 §3.2.1) and contentType, messageDigest
//! and signingTime (RFC 5652 §11).

use const_oid::ObjectIdentifier;
use der::asn1::{
    Ia5StringRef, OctetString, OctetStringRef, PrintableString, PrintableStringRef, SetOfVec, Utf8StringRef,
};
use der::{Any, EncodeValue, Tag, Tagged};
use x509_cert::attr::{Attribute, Attributes};

/// Read access to a SignerInfo's signed attributes.
pub(crate) struct SignedAttributes<'a>(pub(crate) &'a Attributes);

impl<'a> SignedAttributes<'a> {
    /// The value of the attribute `oid`; `None` if it is absent, repeated or multi-valued, since a
    /// second value could be a forged one.
    pub(crate) fn value(&self, oid: ObjectIdentifier) -> Option<&'a Any> {
        let mut matching = self.0.iter().filter(|attribute| attribute.oid == oid);
        let attribute = matching.next()?;
        if matching.next().is_some() || attribute.values.len() != 1 {
            return None;
        }
        attribute.values.get(0)
    }

    /// A string attribute. RFC 8894 says PrintableString; UTF8String and IA5String are accepted
    /// too, as some clients send them.
    pub(crate) fn string(&self, oid: ObjectIdentifier) -> Option<String> {
        let value = self.value(oid)?;
        match value.tag() {
            Tag::PrintableString => value.decode_as::<PrintableStringRef<'_>>().ok().map(|s| s.to_string()),
            Tag::Utf8String => value.decode_as::<Utf8StringRef<'_>>().ok().map(|s| s.to_string()),
            Tag::Ia5String => value.decode_as::<Ia5StringRef<'_>>().ok().map(|s| s.to_string()),
            _ => None,
        }
    }

    /// An OCTET STRING attribute.
    pub(crate) fn octets(&self, oid: ObjectIdentifier) -> Option<Vec<u8>> {
        let value = self.value(oid)?;
        value
            .decode_as::<OctetStringRef<'_>>()
            .ok()
            .map(|octets| octets.as_bytes().to_vec())
    }

    /// An OBJECT IDENTIFIER attribute.
    pub(crate) fn oid(&self, oid: ObjectIdentifier) -> Option<ObjectIdentifier> {
        self.value(oid)?.decode_as::<ObjectIdentifier>().ok()
    }
}

/// An attribute holding one value.
pub(crate) fn single(oid: ObjectIdentifier, value: &(impl Tagged + EncodeValue)) -> der::Result<Attribute> {
    let mut values = SetOfVec::new();
    values.insert(Any::encode_from(value)?)?;
    Ok(Attribute { oid, values })
}

/// An attribute holding one PrintableString.
pub(crate) fn printable(oid: ObjectIdentifier, value: &str) -> der::Result<Attribute> {
    single(oid, &PrintableString::new(value)?)
}

/// An attribute holding one OCTET STRING.
pub(crate) fn octets(oid: ObjectIdentifier, value: &[u8]) -> der::Result<Attribute> {
    single(oid, &OctetString::new(value)?)
}
