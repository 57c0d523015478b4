//! Expressions taken from Okta's documentation, each with the attributes it reads and the
//! outcome the documentation gives, grouped by the page they come from. Where the page only names
//! a use case, the expression is written the way the page writes its neighbours.

use std::collections::HashMap;

use policy_svc::expression::{AttributeRef, AttributeValue, Attributes, Expression, Group, UndefinedKind, Verdict};

/// 2015-07-31T17:18:37.979Z: "assume that the current date and time is" this, in Okta's examples.
const NOW: i64 = 1_438_363_117_979;

/// A sign-in context over a small map.
#[derive(Default)]
struct SignIn {
    values: HashMap<String, AttributeValue>,
    groups: Vec<Group>,
}

impl SignIn {
    fn with(mut self, path: &str, value: impl Into<AttributeValue>) -> Self {
        self.values.insert(path.to_owned(), value.into());
        self
    }

    fn list(self, path: &str, items: &[&str]) -> Self {
        let items = items.iter().map(|item| AttributeValue::from(*item)).collect();
        self.with(path, AttributeValue::List(items))
    }

    fn group(mut self, id: &str, name: &str) -> Self {
        self.groups.push(Group {
            id: id.to_owned(),
            name: name.to_owned(),
        });
        self
    }
}

impl Attributes for SignIn {
    fn attribute(&self, path: &str) -> Option<AttributeRef<'_>> {
        self.values.get(path).map(AttributeValue::as_ref)
    }

    fn groups(&self) -> &[Group] {
        &self.groups
    }
}

/// What the documentation says an expression does here.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    True,
    False,
    /// No answer, for this reason: the rule does not match.
    Undefined(UndefinedKind),
    /// Refused when parsed, with a reason containing this text.
    Refused(&'static str),
}

#[track_caller]
fn check(attributes: &SignIn, cases: &[(&str, Outcome)]) {
    for (source, outcome) in cases {
        let parsed = Expression::parse(source);
        match (outcome, parsed) {
            (Outcome::Refused(reason), Err(error)) => {
                assert!(
                    error.reason.contains(reason),
                    "{source}: refused for another reason: {error}"
                );
            }
            (Outcome::Refused(_), Ok(_)) => panic!("{source}: should be refused"),
            (_, Err(error)) => panic!("{source}: should parse: {error}"),
            (expected, Ok(expression)) => {
                let verdict = expression.evaluate(attributes, NOW);
                let matches = match (expected, &verdict) {
                    (Outcome::True, Verdict::True) | (Outcome::False, Verdict::False) => true,
                    (Outcome::Undefined(kind), Verdict::Undefined(undefined)) => undefined.kind() == *kind,
                    _ => false,
                };
                assert!(matches, "{source}: expected {expected:?}, got {verdict:?}");
            }
        }
    }
}

/// The example user of the Identity Engine reference: John Doe, in four groups.
fn john_doe() -> SignIn {
    SignIn::default()
        .with("user.id", "00u1emaKYZTWRYYRRTSK")
        .with("user.status", "ACTIVE")
        .with("user.profile.firstName", "John")
        .with("user.profile.lastName", "Doe")
        .with("user.profile.email", "john.doe@okta.com")
        .list("user.profile.strArray", &["one", "two"])
        .with(
            "user.profile.intArray",
            AttributeValue::List(vec![1.0.into(), 2.0.into(), 3.0.into()]),
        )
        .with("user.profile.stringDouble", "1.1")
        .with("user.profile.country", "United States")
        .with("user.profile.countryAlpha2", "US")
        .with("user.profile.countryAlpha3", "USA")
        .with("user.profile.isContractor", false)
        .group("00gak46y5hydV6NdM0g4", "Everyone")
        .group("00g1emaKYZTWRYYRRTSK", "West Coast Users")
        .group("00garwpuyxHaWOkdV0g4", "West Coast Admins")
        .group("00gjitX9HqABSoqTB0g3", "Engineering Users")
}

// https://developer.okta.com/docs/reference/okta-expression-language-in-identity-engine/
// "Functions": each documented example, compared with its documented output.
#[test]
fn identity_engine_reference_string_array_and_conversion_functions() {
    use Outcome::*;
    check(
        &john_doe(),
        &[
            ("'test'.toUpperCase() == 'TEST'", True),
            ("user.profile.firstName.toUpperCase() == 'JOHN'", True),
            ("'TEST'.toLowerCase() == 'test'", True),
            ("'test'.substring(1) == 'est'", True),
            ("user.profile.firstName.substring(1,3) == 'oh'", True),
            ("'hello'.replace('l', 'p') == 'heppo'", True),
            ("user.profile.firstName.replace('ohn', 'ames') == 'James'", True),
            ("'hello'.replaceFirst('l', 'p') == 'heplo'", True),
            ("'test'.length() == 4", True),
            ("'This is a test'.removeSpaces() == 'Thisisatest'", True),
            ("'This is a test'.contains('test')", True),
            ("'This is a test'.contains('Test')", False),
            ("user.profile.email.substringBefore('@') == 'john.doe'", True),
            ("user.profile.email.substringAfter('@') == 'okta.com'", True),
            ("user.profile.email.substringAfter('.') == 'doe@okta.com'", True),
            ("user.profile.intArray.contains(3)", True),
            ("{1, 2, 3}.contains('one')", False),
            ("user.profile.strArray.size() == 2", True),
            ("{}.isEmpty()", True),
            ("user.profile.stringDouble.toInteger() == 1", True),
            ("'-2147483649'.toInteger() == 2147483647", True),
            ("user.profile.stringDouble.toNumber() == 1.1", True),
            ("'1.7'.toNumber() == 1.7", True),
            ("1.1.toInteger() == 1", True),
            ("-1.6.toInteger() == -2", True),
            ("2147483647.7.toInteger() == -2147483648", True),
            // "An exception is thrown": here, no answer, so the rule does not match.
            (
                "user.profile.email.toInteger() == 0",
                Undefined(UndefinedKind::InvalidValue),
            ),
            (
                "'123This is a test'.toNumber() == 0",
                Undefined(UndefinedKind::InvalidValue),
            ),
            // Functions that build arrays or need a country table are documented but refused.
            (
                "user.profile.strArray.add('zero').size() == 3",
                Refused("builds a new array"),
            ),
            (
                "user.profile.intArray.remove(1).size() == 2",
                Refused("builds a new array"),
            ),
            (
                "user.profile.country.parseCountryCode().toAlpha2() == 'US'",
                Refused("country table"),
            ),
        ],
    );
}

// https://developer.okta.com/docs/reference/okta-expression-language-in-identity-engine/
// "Time functions", with now at 2015-07-31T17:18:37.979Z. `user.created` is not an attribute
// policies read, so its documented value, 2015-07-30T23:58:32.000Z, is parsed from Unix time.
#[test]
fn identity_engine_reference_time_functions() {
    use Outcome::*;
    let created = "'1438300712000'.parseUnixTime()";
    let cases = [
        (
            "DateTime.now().toString() == '2015-07-31T17:18:37.979Z'".to_owned(),
            True,
        ),
        (
            "'130828367179790000'.parseWindowsTime().toString() == '2015-07-31T17:18:37.979Z'".to_owned(),
            True,
        ),
        (
            "'1438377580979'.parseUnixTime().toString() == '2015-07-31T21:19:40.979Z'".to_owned(),
            True,
        ),
        (
            "'2015-06-17T00:23:19.676Z'.parseStringTime().toString() == '2015-06-17T00:23:19.676Z'".to_owned(),
            True,
        ),
        (format!("{created}.toWindows() == '130827743120000000'"), True),
        ("DateTime.now().toUnix() == '1438363117979'".to_owned(), True),
        (format!("{created}.toString() == '2015-07-30T23:58:32Z'"), True),
        (
            format!("{created}.plusDays(2).toString() == '2015-08-01T23:58:32Z'"),
            True,
        ),
        (
            format!("{created}.plusHours(-1).toString() == '2015-07-30T22:58:32Z'"),
            True,
        ),
        (format!("{created}.plusMinutes(0) == {created}"), True),
        (format!("{created}.plusSeconds(0) == {created}"), True),
        (
            "Time.now().minusDays(3).toString() == '2015-07-28T17:18:37.979Z'".to_owned(),
            True,
        ),
        (
            "Time.now().minusHours(100).toString() == '2015-07-27T13:18:37.979Z'".to_owned(),
            True,
        ),
        (
            "Time.now().minusMinutes(-1).toString() == '2015-07-31T17:19:37.979Z'".to_owned(),
            True,
        ),
        (
            "Time.now().minusSeconds(2).toString() == '2015-07-31T17:18:35.979Z'".to_owned(),
            True,
        ),
        (format!("{created}.withinDays(1)"), True),
        (format!("{created}.withinHours(100)"), True),
        (format!("{created}.withinMinutes(2)"), False),
        (format!("{created}.withinSeconds(100)"), False),
        (
            format!("user.profile.isContractor || {created}.withinSeconds(0)"),
            False,
        ),
        (
            "'17 June 2015 00:23:19'.parseStringTime('dd MMMM yyyy HH:mm:ss') < DateTime.now()".to_owned(),
            Refused("format pattern"),
        ),
        (
            format!("{created}.toString('MM/dd/yyyy') == '07/30/2015'"),
            Refused("format pattern"),
        ),
        (
            "Time.now().toZone('Asia/Tokyo') == Time.now()".to_owned(),
            Refused("time-zone database"),
        ),
    ];
    let cases: Vec<(&str, Outcome)> = cases
        .iter()
        .map(|(source, outcome)| (source.as_str(), *outcome))
        .collect();
    check(&john_doe(), &cases);
}

// https://developer.okta.com/docs/reference/okta-expression-language-in-identity-engine/
// "Group functions" and "Conditional expressions".
#[test]
fn identity_engine_reference_groups_and_conditions() {
    use Outcome::*;
    check(
        &john_doe(),
        &[
            (
                "user.isMemberOf({'group.profile.name': 'West Coast', 'operator': 'STARTS_WITH' })",
                True,
            ),
            (
                "user.isMemberOf({'group.profile.name': 'West Coast', 'operator': 'EXACT' })",
                False,
            ),
            (
                "user.isMemberOf({'group.id': {'00gjitX9HqABSoqTB0g3', '00garwpuyxHaWOkdV0g4'}}, {'group.type': 'APP_GROUP'})",
                Refused("group.type is not supported"),
            ),
            ("user.profile.country == \"United States\"", True),
            ("user.profile.intArray.contains(0)", False),
            (
                "(user.profile.isContractor && user.isMemberOf({'group.profile.name': 'West Coast Users'}) ? \"West coast contractors\" : \"Others\") == \"Others\"",
                True,
            ),
            (
                "user.profile.firstName + \" \" + user.profile.lastName == 'John Doe'",
                True,
            ),
        ],
    );
}

// https://developer.okta.com/docs/reference/okta-expression-language-in-identity-engine/
// "Security context": risk level and user behaviors.
#[test]
fn identity_engine_reference_security_context() {
    use Outcome::*;
    let risky = SignIn::default()
        .with("security.risk.level", "HIGH")
        .list("security.behaviors", &["New IP", "New Device"]);
    check(
        &risky,
        &[
            ("security.risk.level == 'HIGH'", True),
            ("security.risk.level != 'LOW'", True),
            (
                "security.behaviors.contains('New IP') && security.behaviors.contains('New Device')",
                True,
            ),
        ],
    );
    let calm = SignIn::default()
        .with("security.risk.level", "LOW")
        .list("security.behaviors", &[]);
    check(
        &calm,
        &[
            ("security.risk.level == 'HIGH'", False),
            ("security.risk.level != 'LOW'", False),
            (
                "security.behaviors.contains('New IP') && security.behaviors.contains('New Device')",
                False,
            ),
        ],
    );
    // Without a risk assessment there is no answer, so a "not LOW" rule cannot match by accident.
    check(
        &SignIn::default(),
        &[
            ("security.risk.level != 'LOW'", Undefined(UndefinedKind::Missing)),
            (
                "!security.behaviors.contains('New IP')",
                Undefined(UndefinedKind::Missing),
            ),
        ],
    );
}

// https://help.okta.com/oie/en-us/content/topics/identity-engine/devices/el-device-attributes.htm
// Okta Verify version checks, and the documented pitfall of comparing versions as text.
#[test]
fn device_attribute_reference_okta_verify_versions() {
    use Outcome::*;
    let current = SignIn::default().with("device.provider.oktaVerify.version", "9.46.1.2025.710.1826");
    check(
        &current,
        &[
            (
                "device.provider.oktaVerify.version.versionGreaterThan('9.43') == true",
                True,
            ),
            (
                "device.provider.oktaVerify.version.versionLessThan('9.42.0') == true",
                False,
            ),
            ("device.provider.oktaVerify.version == '9.46.1.2025.710.1826'", True),
            (
                "device.provider.oktaVerify.version > '10.3.1'",
                Refused("use versionGreaterThan or versionLessThan"),
            ),
        ],
    );
    let old = SignIn::default().with("device.provider.oktaVerify.version", "9.23.0");
    check(
        &old,
        &[
            ("device.provider.oktaVerify.version.versionGreaterThan('10.3.1')", False),
            (
                "device.provider.oktaVerify.version.versionLessThan('9.42.0') == true",
                True,
            ),
        ],
    );
    check(
        &SignIn::default(),
        &[(
            "device.provider.oktaVerify.version.versionGreaterThan('9.43') == true",
            Undefined(UndefinedKind::Missing),
        )],
    );
}

// https://help.okta.com/oie/en-us/content/topics/identity-engine/devices/el-device-attributes.htm
// Device profile attributes; some (imei, meid, serialNumber, udid) are not on every device.
#[test]
fn device_attribute_reference_profile_attributes() {
    use Outcome::*;
    let laptop = SignIn::default()
        .with("device.assurance.screenLockType", "BIOMETRIC")
        .with("device.profile.diskEncryptionType", "ALL_INTERNAL_VOLUMES")
        .with("device.profile.displayName", "DESKTOP-BE6IL05")
        .with("device.profile.manufacturer", "VMware, Inc.")
        .with("device.profile.model", "VMware7,1")
        .with("device.profile.registered", true)
        .with("device.profile.managed", false)
        .with("device.profile.secureHardwarePresent", true)
        .with("device.profile.platform", "WINDOWS")
        .with("device.profile.sid", "S-1-5-21-1016203815-1917570059-4244971090-500");
    check(
        &laptop,
        &[
            ("device.assurance.screenLockType == 'BIOMETRIC'", True),
            ("device.profile.diskEncryptionType == 'ALL_INTERNAL_VOLUMES'", True),
            ("device.profile.displayName == 'DESKTOP-BE6IL05'", True),
            (
                "device.profile.manufacturer == 'VMware, Inc.' && device.profile.model == 'VMware7,1'",
                True,
            ),
            ("device.profile.managed == true", False),
            ("device.profile.sid.startsWith('S-1-5-21-')", True),
            (
                "device.profile.imei == '410154203237518'",
                Undefined(UndefinedKind::Missing),
            ),
            (
                "device.profile.serialNumber != 'VMware-56 5d e2 35'",
                Undefined(UndefinedKind::Missing),
            ),
        ],
    );
}

// https://help.okta.com/oie/en-us/content/topics/identity-engine/devices/el-about.htm
// "require that the device is registered and managed, and has secure hardware".
#[test]
fn device_expression_overview_example() {
    use Outcome::*;
    let source = "device.profile.registered == true && device.profile.managed == true && device.profile.secureHardwarePresent == true";
    let compliant = SignIn::default()
        .with("device.profile.registered", true)
        .with("device.profile.managed", true)
        .with("device.profile.secureHardwarePresent", true);
    check(&compliant, &[(source, True)]);
    let unmanaged = SignIn::default()
        .with("device.profile.registered", true)
        .with("device.profile.managed", false)
        .with("device.profile.secureHardwarePresent", true);
    check(&unmanaged, &[(source, False)]);
    // An unregistered device has no profile: false, decided by the first operand alone.
    let unregistered = SignIn::default().with("device.profile.registered", false);
    check(&unregistered, &[(source, False)]);
}

// https://support.okta.com/help/s/article/attributes-that-can-be-used-in-policies-expression-language
// "the device must be registered and one of the first 3 letters of the display name must be X".
#[test]
fn support_article_device_display_name_example() {
    use Outcome::*;
    let source = "device.profile.registered == true && device.profile.displayName.substring(0,3).contains(\"X\")";
    let xyz = SignIn::default()
        .with("device.profile.registered", true)
        .with("device.profile.displayName", "XYZ S21");
    check(&xyz, &[(source, True)]);
    let desktop = SignIn::default()
        .with("device.profile.registered", true)
        .with("device.profile.displayName", "DESKTOP-X");
    check(&desktop, &[(source, False)]);
    // A two-letter name has no substring(0,3): no answer, so no match.
    let short = SignIn::default()
        .with("device.profile.registered", true)
        .with("device.profile.displayName", "XY");
    check(&short, &[(source, Undefined(UndefinedKind::InvalidValue))]);
}

// https://help.okta.com/oie/en-us/content/topics/identity-engine/devices/edr-integration-available-signals.htm
// CrowdStrike (zta) and Windows Security Center (wsc) signals.
#[test]
fn edr_signals_for_custom_expressions() {
    use Outcome::*;
    let crowdstrike = SignIn::default()
        .with("device.provider.zta.os", 55.0)
        .with("device.provider.zta.overall", 72.0)
        .with("device.provider.zta.sensorConfig", 2.0)
        .with("device.provider.zta.csSerialNumber", "C02XG2JHJGH5")
        .with("device.profile.serialNumber", "C02XG2JHJGH5")
        .with("device.provider.zta.cid", "my-crowdstrike-customer-id")
        .with("device.provider.zta.csPlatform", "Windows 11")
        .with("device.provider.zta.aid", "dev-agent-id")
        .with("device.provider.zta.expirationDateTime", "1438366717979")
        .with("device.provider.zta.issuedDateTime", "1438359517979")
        .with("device.provider.wsc.antiVirus", "GOOD")
        .with("device.provider.wsc.fireWall", "POOR");
    check(
        &crowdstrike,
        &[
            ("device.provider.zta.os <= 60", True),
            ("device.provider.zta.overall >= 60", True),
            ("device.provider.zta.sensorConfig == 2", True),
            (
                "device.provider.zta.csSerialNumber == device.profile.serialNumber",
                True,
            ),
            ("device.provider.zta.cid == \"my-crowdstrike-customer-id\"", True),
            ("device.provider.zta.csPlatform == \"Windows 11\"", True),
            ("device.provider.zta.aid == \"dev-agent-id\"", True),
            (
                "device.provider.zta.expirationDateTime.parseUnixTime() > DateTime.now()",
                True,
            ),
            (
                "device.provider.zta.issuedDateTime.parseUnixTime() < DateTime.now()",
                True,
            ),
            ("device.provider.wsc.antiVirus == \"GOOD\"", True),
            ("device.provider.wsc.fireWall == \"GOOD\"", False),
        ],
    );
    // Without the EDR integration the signals are absent, and no rule on them matches.
    check(
        &SignIn::default(),
        &[
            ("device.provider.zta.overall >= 60", Undefined(UndefinedKind::Missing)),
            ("device.provider.zta.os <= 60", Undefined(UndefinedKind::Missing)),
            (
                "device.provider.zta.expirationDateTime.parseUnixTime() > DateTime.now()",
                Undefined(UndefinedKind::Missing),
            ),
            (
                "device.provider.wsc.fireWall != \"POOR\"",
                Undefined(UndefinedKind::Missing),
            ),
        ],
    );
}

// https://support.okta.com/help/s/article/how-to-add-okta-expression-language-in-authentication-policy-rules
#[test]
fn support_article_authentication_policy_rule_examples() {
    use Outcome::*;
    let help_desk = SignIn::default()
        .with("user.status", "ACTIVE")
        .with("user.profile.department", "Help Desk")
        .group("00g1managers0000000", "Managers");
    check(
        &help_desk,
        &[
            (
                "user.isMemberOf({'group.profile.name': 'Managers', 'operator': 'EXACT'})",
                True,
            ),
            ("user.profile.department == \"Help Desk\"", True),
            (
                "user.status == 'ACTIVE' && user.profile.department == \"Help Desk\"",
                True,
            ),
        ],
    );
    let sales = SignIn::default()
        .with("user.status", "ACTIVE")
        .with("user.profile.department", "Sales");
    check(
        &sales,
        &[
            (
                "user.isMemberOf({'group.profile.name': 'Managers', 'operator': 'EXACT'})",
                False,
            ),
            (
                "user.status == 'ACTIVE' && user.profile.department == \"Help Desk\"",
                False,
            ),
        ],
    );
}

// https://help.okta.com/oie/en-us/content/topics/identity-governance/em/policy-rule-el-examples.htm
// Group scoping, with && / || and the AND / OR keywords the page lists.
#[test]
fn policy_rule_examples_for_group_scoping() {
    use Outcome::*;
    let west_coast = SignIn::default()
        .group("00gjitX9HqABSoqTB0g3", "West Coast Users")
        .group("00gak46y5hydV6NdM0g4", "Everyone");
    check(
        &west_coast,
        &[
            (
                "user.isMemberOf({'group.profile.name': 'West Coast Users', 'operator': 'EXACT'})",
                True,
            ),
            ("user.isMemberOf({'group.id': '00gjitX9HqABSoqTB0g3'})", True),
            (
                "!user.isMemberOf({'group.profile.name': 'West Coast Users', 'operator': 'EXACT'})",
                False,
            ),
            ("!user.isMemberOf({'group.id': '00gjitX9HqABSoqTB0g3'})", False),
            (
                "user.isMemberOf({'group.id': '00gjitX9HqABSoqTB0g3'}) && user.isMemberOf({'group.id': '00garwpuyxHaWOkdV0g4'})",
                False,
            ),
            (
                "user.isMemberOf({'group.id': '00gjitX9HqABSoqTB0g3'}) || user.isMemberOf({'group.id': '00garwpuyxHaWOkdV0g4'})",
                True,
            ),
            (
                "user.isMemberOf({'group.id': '00gjitX9HqABSoqTB0g3'}) OR user.isMemberOf({'group.id': '00garwpuyxHaWOkdV0g4'})",
                True,
            ),
            (
                "user.isMemberOf({'group.id': '00gjitX9HqABSoqTB0g3'}) AND !user.isMemberOf({'group.id': '00garwpuyxHaWOkdV0g4'})",
                True,
            ),
            // The page's realm example: user.realmId is not an attribute authentication policies read.
            (
                "user.realmId == \"o4cbj6ybZl1QShj0g7\" OR user.realmId == \"guo4c8usniIlFgluO0g7\"",
                Refused("is not an attribute"),
            ),
        ],
    );
}
