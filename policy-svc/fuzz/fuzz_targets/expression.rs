//! Arbitrary bytes (lossy UTF-8) as an expression: parsing must give an expression or an error,
//! and what parses must evaluate to a verdict against a fixed sign-in, never panic or run away.
//!
//! It also checks that missing data fails closed: evaluated with every attribute missing, an
//! expression that still decides true or false must decide the same once the attributes are
//! there (or run out of steps), since a missing attribute may only withhold an answer.
//!
//! Seed the corpus with expressions from `tests/expression_corpus.rs`; `expression.dict` holds
//! the language's words (`cargo fuzz run expression -- -dict=expression.dict`).

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use policy_svc::expression::{AttributeRef, AttributeValue, Attributes, Expression, Group, UndefinedKind, Verdict};

/// 2015-07-31T17:18:37.979Z.
const NOW: i64 = 1_438_363_117_979;

struct SignIn {
    values: Vec<(&'static str, AttributeValue)>,
    groups: Vec<Group>,
    /// Whether attributes are there at all; groups always are.
    present: bool,
}

impl Attributes for SignIn {
    fn attribute(&self, path: &str) -> Option<AttributeRef<'_>> {
        if !self.present {
            return None;
        }
        if let Some((_, value)) = self.values.iter().find(|(known, _)| *known == path) {
            return Some(value.as_ref());
        }
        // Other profile properties get a value chosen by their name, so any name the fuzzer
        // invents reads something.
        let index = path.len() % self.values.len();
        self.values.get(index).map(|(_, value)| value.as_ref())
    }

    fn groups(&self) -> &[Group] {
        &self.groups
    }
}

fn strings(items: &[&str]) -> AttributeValue {
    AttributeValue::List(items.iter().map(|item| AttributeValue::from(*item)).collect())
}

static FULL: LazyLock<SignIn> = LazyLock::new(|| SignIn {
    values: vec![
        ("user.id", "00u1emaKYZTWRYYRRTSK".into()),
        ("user.status", "ACTIVE".into()),
        ("user.profile.email", "john.doe@okta.com".into()),
        ("user.profile.firstName", "John".into()),
        ("user.profile.age", 42.0.into()),
        ("user.profile.nan", f64::NAN.into()),
        ("user.profile.isContractor", false.into()),
        ("user.profile.tags", strings(&["one", "two"])),
        (
            "user.profile.nested",
            AttributeValue::List(vec![strings(&["a"]), 1.0.into()]),
        ),
        ("user.profile.emoji", "😀 ß İ".into()),
        ("user.profile.long", "x".repeat(4096).into()),
        ("device.registered", true.into()),
        ("device.managed", false.into()),
        ("device.profile.displayName", "DESKTOP-BE6IL05".into()),
        ("device.provider.oktaVerify.version", "9.46.1.2025.710.1826".into()),
        ("device.provider.zta.overall", 72.0.into()),
        ("device.provider.zta.expirationDateTime", "1438366717979".into()),
        ("security.risk.level", "LOW".into()),
        ("security.behaviors", strings(&["New IP", "New Device"])),
    ],
    groups: vec![
        Group {
            id: "00gak46y5hydV6NdM0g4".into(),
            name: "Everyone".into(),
        },
        Group {
            id: "00g1emaKYZTWRYYRRTSK".into(),
            name: "West Coast Users".into(),
        },
    ],
    present: true,
});

static EMPTY: LazyLock<SignIn> = LazyLock::new(|| SignIn {
    values: Vec::new(),
    groups: FULL.groups.clone(),
    present: false,
});

fuzz_target!(|data: &[u8]| {
    let source = String::from_utf8_lossy(data);
    let Ok(expression) = Expression::parse(&source) else {
        return;
    };
    assert_eq!(expression.source(), source);
    let full = expression.evaluate(&*FULL, NOW);
    assert_eq!(full, expression.evaluate(&*FULL, NOW), "evaluation is deterministic");
    let without_attributes = expression.evaluate(&*EMPTY, NOW);
    if let Verdict::True | Verdict::False = without_attributes {
        let ran_out = matches!(&full, Verdict::Undefined(undefined) if undefined.kind() == UndefinedKind::StepLimit);
        assert!(
            full == without_attributes || ran_out,
            "{source:?} decided {without_attributes:?} without attributes but {full:?} with them"
        );
    }
});
