//! Behaviour of the expression language as a policy author sees it: what parses, what each
//! expression decides, and why it cannot decide.

use std::collections::HashMap;

use super::*;

/// 2015-07-31T17:18:37.979Z, the "now" of Okta's time-function examples.
const NOW: i64 = 1_438_363_117_979;

#[derive(Default)]
struct Context {
    values: HashMap<String, AttributeValue>,
    groups: Vec<Group>,
}

impl Attributes for Context {
    fn attribute(&self, path: &str) -> Option<AttributeRef<'_>> {
        self.values.get(path).map(AttributeValue::as_ref)
    }

    fn groups(&self) -> &[Group] {
        &self.groups
    }
}

fn context(pairs: &[(&str, AttributeValue)]) -> Context {
    Context {
        values: pairs
            .iter()
            .map(|(path, value)| ((*path).to_owned(), value.clone()))
            .collect(),
        groups: Vec::new(),
    }
}

fn strings(items: &[&str]) -> AttributeValue {
    AttributeValue::List(items.iter().map(|item| AttributeValue::from(*item)).collect())
}

/// Okta's example user: John Doe, as in the Identity Engine expression reference.
fn john() -> Context {
    let mut john = context(&[
        ("user.id", "00u1abc".into()),
        ("user.status", "ACTIVE".into()),
        ("user.profile.firstName", "John".into()),
        ("user.profile.lastName", "Doe".into()),
        ("user.profile.email", "john.doe@okta.com".into()),
        ("user.profile.strArray", strings(&["one", "two"])),
        (
            "user.profile.intArray",
            AttributeValue::List(vec![1.0.into(), 2.0.into(), 3.0.into()]),
        ),
        ("user.profile.stringDouble", "1.1".into()),
        ("user.profile.country", "United States".into()),
        ("user.profile.isContractor", false.into()),
        ("user.profile.age", 42.0.into()),
        ("user.profile.empty", "".into()),
        ("user.profile.noList", AttributeValue::List(Vec::new())),
        ("device.registered", true.into()),
        ("device.managed", false.into()),
        ("device.profile.displayName", "DESKTOP-BE6IL05".into()),
        ("device.provider.oktaVerify.version", "9.46.1.2025.710.1826".into()),
        ("security.risk.level", "LOW".into()),
        ("security.behaviors", strings(&["New IP", "New Device"])),
    ]);
    john.groups = vec![
        group("00gak46y5hydV6NdM0g4", "Everyone"),
        group("00g1emaKYZTWRYYRRTSK", "West Coast Users"),
        group("00garwpuyxHaWOkdV0g4", "West Coast Admins"),
        group("00gjitX9HqABSoqTB0g3", "Engineering Users"),
    ];
    john
}

fn group(id: &str, name: &str) -> Group {
    Group {
        id: id.to_owned(),
        name: name.to_owned(),
    }
}

fn parse(source: &str) -> Expression {
    Expression::parse(source).unwrap_or_else(|error| panic!("{source:?} should parse: {error}"))
}

fn verdict(source: &str, attributes: &Context) -> Verdict {
    parse(source).evaluate(attributes, NOW)
}

#[track_caller]
fn assert_true(source: &str, attributes: &Context) {
    assert_eq!(verdict(source, attributes), Verdict::True, "{source}");
}

#[track_caller]
fn assert_false(source: &str, attributes: &Context) {
    assert_eq!(verdict(source, attributes), Verdict::False, "{source}");
}

#[track_caller]
fn undefined(source: &str, attributes: &Context) -> Undefined {
    match verdict(source, attributes) {
        Verdict::Undefined(undefined) => undefined,
        other => panic!("{source} should be undefined, was {other:?}"),
    }
}

#[track_caller]
fn parse_error(source: &str) -> ParseError {
    match Expression::parse(source) {
        Err(error) => error,
        Ok(_) => panic!("{source:?} should not parse"),
    }
}

#[track_caller]
fn assert_refused(source: &str, reason: &str) {
    let error = parse_error(source);
    assert!(error.reason.contains(reason), "{source:?}: {error}");
}

mod precedence {
    use super::*;

    #[test]
    fn and_binds_tighter_than_or() {
        let none = Context::default();
        assert_true("true || false && false", &none);
        assert_false("(true || false) && false", &none);
        assert_false("false && false || false", &none);
    }

    #[test]
    fn not_binds_tighter_than_and_and_comparison() {
        let none = Context::default();
        assert_false("!false && false", &none);
        assert_true("!(false && false)", &none);
        assert_true("!false == true", &none);
    }

    #[test]
    fn arithmetic_binds_tighter_than_comparison_and_multiplies_first() {
        let none = Context::default();
        assert_true("1 + 2 * 3 == 7", &none);
        assert_true("10 - 2 - 3 == 5", &none);
        assert_true("'a' + 'b' + 'c' == 'abc'", &none);
    }

    #[test]
    fn method_calls_bind_tighter_than_unary_minus() {
        assert_true("-1.6.toInteger() == -2", &Context::default());
        assert_true("-(1.6).toInteger() == -2", &Context::default());
    }

    #[test]
    fn the_ternary_operator_is_loosest_and_nests_to_the_right() {
        let none = Context::default();
        assert_false("true ? false : true || true", &none);
        assert_true("false ? false : false ? false : true", &none);
        assert_true("(true ? 'a' : 'b') == 'a'", &none);
    }

    #[test]
    fn and_or_keywords_work_like_the_symbols() {
        let none = Context::default();
        assert_true("true AND false OR true", &none);
        assert_false("false or true and false", &none);
        assert_refused("true AND", "expected a value");
    }

    #[test]
    fn comparisons_do_not_chain() {
        assert_refused("1 < 2 == true", "do not chain");
        assert_true("(1 < 2) == true", &Context::default());
    }
}

mod quoting {
    use super::*;

    #[test]
    fn both_quote_styles_and_their_escapes_read_the_same_text() {
        let irish = context(&[("user.profile.lastName", "O'Brien \"Jr\"".into())]);
        for source in [
            r#"user.profile.lastName == 'O\'Brien "Jr"'"#,
            r#"user.profile.lastName == 'O''Brien "Jr"'"#,
            r#"user.profile.lastName == "O'Brien \"Jr\"""#,
            r#"user.profile.lastName == 'O\u0027Brien \u0022Jr\u0022'"#,
        ] {
            assert_true(source, &irish);
        }
    }

    #[test]
    fn non_ascii_text_compares_exactly() {
        let tokyo = context(&[("user.profile.city", "東京".into())]);
        assert_true("user.profile.city == '東京'", &tokyo);
        assert_false("user.profile.city == '京都'", &tokyo);
    }
}

mod three_valued_logic {
    use super::*;

    /// (source, value): true, false, and undefined (a missing attribute).
    const OPERANDS: [(&str, Option<bool>); 3] = [
        ("true", Some(true)),
        ("false", Some(false)),
        ("user.profile.missing == 'x'", None),
    ];

    fn expected(value: Option<bool>) -> &'static str {
        match value {
            Some(true) => "true",
            Some(false) => "false",
            None => "undefined",
        }
    }

    fn actual(source: &str) -> &'static str {
        match verdict(source, &Context::default()) {
            Verdict::True => "true",
            Verdict::False => "false",
            Verdict::Undefined(_) => "undefined",
        }
    }

    #[test]
    fn and_is_kleene_conjunction() {
        for (left, a) in OPERANDS {
            for (right, b) in OPERANDS {
                let want = match (a, b) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                };
                let source = format!("({left}) && ({right})");
                assert_eq!(actual(&source), expected(want), "{source}");
            }
        }
    }

    #[test]
    fn or_is_kleene_disjunction() {
        for (left, a) in OPERANDS {
            for (right, b) in OPERANDS {
                let want = match (a, b) {
                    (Some(true), _) | (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                };
                let source = format!("({left}) || ({right})");
                assert_eq!(actual(&source), expected(want), "{source}");
            }
        }
    }

    #[test]
    fn not_keeps_undefined_undefined() {
        for (operand, value) in OPERANDS {
            let source = format!("!({operand})");
            assert_eq!(actual(&source), expected(value.map(|v| !v)), "{source}");
        }
    }

    #[test]
    fn a_ternary_with_an_undefined_condition_is_undefined() {
        assert_eq!(actual("(user.profile.missing == 'x') ? true : true"), "undefined");
        assert_eq!(actual("true ? (user.profile.missing == 'x') : true"), "undefined");
        assert_eq!(actual("false ? (user.profile.missing == 'x') : true"), "true");
    }

    #[test]
    fn the_first_undefined_operand_is_the_reason_given() {
        let reason = undefined(
            "user.profile.a == 1 && user.profile.b == 1 && true",
            &Context::default(),
        );
        assert_eq!(reason.path(), Some("user.profile.a"));
    }
}

mod missing_data {
    use super::*;

    #[test]
    fn a_missing_attribute_never_makes_a_condition_pass() {
        let john = john();
        let conditions = [
            "user.profile.missing == 'a'",
            "user.profile.missing != 'a'",
            "!(user.profile.missing == 'a')",
            "!user.profile.missing",
            "user.profile.missing",
            "user.profile.missing == null",
            "user.profile.missing != null",
            "user.profile.missing < 5",
            "!(user.profile.missing >= 5)",
            "user.profile.missing.contains('a')",
            "!user.profile.missing.contains('a')",
            "user.profile.missing.length() != 3",
            "user.profile.missing.isEmpty()",
            "!user.profile.missing.isEmpty()",
            "user.profile.missing.toLowerCase() != 'x'",
            "device.provider.zta.expirationDateTime.parseUnixTime() > DateTime.now()",
            "device.provider.zta.issuedDateTime.parseUnixTime() < DateTime.now()",
            "user.profile.missing ? false : true",
            "Arrays.isEmpty(user.profile.missing)",
            "!Arrays.contains(user.profile.missing, 'a')",
            "Arrays.size(user.profile.missing) == 0",
            "!String.stringContains(user.profile.missing, 'a')",
            "'abc'.contains(user.profile.missing) || false",
            "!('abc' == user.profile.missing)",
            "user.profile.missing + 'x' != 'x'",
            "-user.profile.missing != 1",
            "user.profile.firstName.substring(user.profile.missing) != 'J'",
        ];
        for condition in conditions {
            let result = verdict(condition, &john);
            assert!(!result.is_true(), "{condition} passed with a missing attribute");
            assert!(matches!(result, Verdict::Undefined(_)), "{condition}: {result:?}");
        }
    }

    #[test]
    fn a_missing_device_attribute_never_passes_a_negated_version_check() {
        let unregistered = Context::default();
        let result = verdict(
            "!device.provider.oktaVerify.version.versionLessThan('9.42.0')",
            &unregistered,
        );
        assert_eq!(
            result,
            Verdict::Undefined(Undefined::missing(&Arc::from("device.provider.oktaVerify.version")))
        );
    }

    #[test]
    fn a_type_mismatch_never_makes_a_condition_pass() {
        let john = john();
        for condition in [
            "user.profile.age != 'forty'",
            "user.profile.firstName != 7",
            "!(user.profile.age == 'x')",
            "user.profile.isContractor != 'false'",
            "!user.profile.firstName",
            "user.profile.firstName || true && false",
            "user.profile.age.contains('4')",
            "user.profile.strArray == user.profile.intArray",
            "user.profile.firstName < 3",
        ] {
            let result = verdict(condition, &john);
            assert!(!result.is_true(), "{condition}");
            match result {
                Verdict::Undefined(undefined) => {
                    assert_eq!(undefined.kind(), UndefinedKind::TypeMismatch, "{condition}")
                }
                other => panic!("{condition}: {other:?}"),
            }
        }
    }

    #[test]
    fn null_only_tests_the_presence_of_a_present_value() {
        let john = john();
        assert_true("user.profile.firstName != null", &john);
        assert_false("user.profile.firstName == null", &john);
        assert_true("null == null", &john);
    }

    #[test]
    fn undefined_names_the_missing_attribute() {
        let reason = undefined("device.profile.serialNumber == 'C02X'", &Context::default());
        assert_eq!(reason.kind(), UndefinedKind::Missing);
        assert_eq!(reason.path(), Some("device.profile.serialNumber"));
        assert_eq!(reason.to_string(), "device.profile.serialNumber is missing");
    }

    #[test]
    fn undefined_explains_a_type_mismatch_with_the_attribute_path() {
        let reason = undefined("user.profile.age.contains('4')", &john());
        assert_eq!(
            reason.to_string(),
            "user.profile.age: contains needs a string or a list, found a number"
        );
        let reason = undefined("user.profile.firstName && true", &john());
        assert_eq!(
            reason.to_string(),
            "user.profile.firstName: && needs a boolean, found a string"
        );
        let reason = undefined("user.profile.firstName", &john());
        assert_eq!(reason.kind(), UndefinedKind::NotBoolean);
        assert_eq!(
            reason.to_string(),
            "the expression produced a string, not true or false"
        );
    }

    #[test]
    fn an_attribute_that_is_not_a_number_is_undefined_not_false() {
        let odd = context(&[("device.provider.zta.overall", f64::NAN.into())]);
        assert_eq!(
            undefined("device.provider.zta.overall >= 60", &odd).kind(),
            UndefinedKind::InvalidValue
        );
        assert_eq!(
            undefined("device.provider.zta.overall != 60", &odd).kind(),
            UndefinedKind::InvalidValue
        );
    }
}

mod methods {
    use super::*;

    #[test]
    fn case_changes_follow_okta_examples() {
        let john = john();
        assert_true("'test'.toUpperCase() == 'TEST'", &john);
        assert_true("user.profile.firstName.toUpperCase() == 'JOHN'", &john);
        assert_true("'TEST'.toLowerCase() == 'test'", &john);
        assert_true("'straße'.toUpperCase() == 'STRASSE'", &john);
        assert_true("'ÉCOLE'.toLowerCase() == 'école'", &john);
    }

    #[test]
    fn substring_counts_from_zero_with_an_exclusive_end() {
        let john = john();
        assert_true("'test'.substring(1) == 'est'", &john);
        assert_true("user.profile.firstName.substring(1,3) == 'oh'", &john);
        assert_true("'test'.substring(4) == ''", &john);
        assert_true("device.profile.displayName.substring(0,3).contains('D')", &john);
        for bad in [
            "'test'.substring(5) == ''",
            "'test'.substring(3, 2) == ''",
            "'test'.substring(-1) == ''",
        ] {
            assert_eq!(undefined(bad, &john).kind(), UndefinedKind::InvalidValue, "{bad}");
        }
        assert_eq!(
            undefined("'test'.substring(1.5) == ''", &john).kind(),
            UndefinedKind::InvalidValue
        );
    }

    #[test]
    fn lengths_and_offsets_count_utf16_units_like_java() {
        let none = Context::default();
        assert_true("'😀a'.length() == 3", &none);
        assert_true("'😀a'.substring(2) == 'a'", &none);
        assert_eq!(
            undefined("'😀a'.substring(1) == 'a'", &none).kind(),
            UndefinedKind::InvalidValue
        );
    }

    #[test]
    fn replace_changes_every_match_and_replace_first_one() {
        let john = john();
        assert_true("'hello'.replace('l', 'p') == 'heppo'", &john);
        assert_true("user.profile.firstName.replace('ohn', 'ames') == 'James'", &john);
        assert_true("'hello'.replaceFirst('l', 'p') == 'heplo'", &john);
        assert_true("'hello'.replace('z', 'p') == 'hello'", &john);
    }

    #[test]
    fn replace_first_refuses_patterns_java_would_read_as_regular_expressions() {
        assert_refused("'a.b'.replaceFirst('.', '-') == 'a-b'", "regular expression");
        assert_refused("'ab'.replaceFirst('a', '$1') == 'b'", "replacement");
        assert_refused("'ab'.replaceFirst(user.profile.x, 'c') == 'b'", "literal pattern");
    }

    #[test]
    fn length_remove_spaces_and_is_empty_work_on_strings() {
        let john = john();
        assert_true("'test'.length() == 4", &john);
        assert_true("'This is a test'.removeSpaces() == 'Thisisatest'", &john);
        assert_true("user.profile.empty.isEmpty()", &john);
        assert_false("user.profile.firstName.isEmpty()", &john);
    }

    #[test]
    fn contains_searches_strings_and_lists() {
        let john = john();
        assert_true("'This is a test'.contains('test')", &john);
        assert_false("'This is a test'.contains('Test')", &john);
        assert_true("user.profile.intArray.contains(3)", &john);
        assert_false("user.profile.intArray.contains(0)", &john);
        assert_false("{1, 2, 3}.contains('one')", &john);
        assert_true("{'one', 'two'}.contains('two')", &john);
        assert_true(
            "security.behaviors.contains('New IP') && security.behaviors.contains('New Device')",
            &john,
        );
    }

    #[test]
    fn substring_before_and_after_split_at_the_first_match() {
        let john = john();
        assert_true("user.profile.email.substringBefore('@') == 'john.doe'", &john);
        assert_true("user.profile.email.substringAfter('@') == 'okta.com'", &john);
        assert_true("user.profile.email.substringAfter('.') == 'doe@okta.com'", &john);
        assert_true("user.profile.email.substringBefore('#') == user.profile.email", &john);
        assert_true("user.profile.email.substringAfter('#') == ''", &john);
    }

    #[test]
    fn starts_with_and_ends_with_test_affixes() {
        let john = john();
        assert_true("user.profile.email.endsWith('@okta.com')", &john);
        assert_true("user.profile.email.startsWith('john.')", &john);
        assert_false("user.profile.email.startsWith('jane.')", &john);
    }

    #[test]
    fn lists_have_a_size_and_can_be_empty() {
        let john = john();
        assert_true("user.profile.strArray.size() == 2", &john);
        assert_true("{}.isEmpty()", &john);
        assert_true("user.profile.noList.isEmpty()", &john);
        assert_false("security.behaviors.isEmpty()", &john);
        assert_true("{{1}, {2, 3}}.size() == 2", &john);
    }

    #[test]
    fn versions_compare_numerically_segment_by_segment() {
        let john = john();
        assert_true(
            "device.provider.oktaVerify.version.versionGreaterThan('9.43') == true",
            &john,
        );
        assert_false(
            "device.provider.oktaVerify.version.versionLessThan('9.42.0') == true",
            &john,
        );
        assert_true("device.provider.oktaVerify.version == '9.46.1.2025.710.1826'", &john);
        assert_true("'10.3.1'.versionGreaterThan('9.23.0')", &john);
        assert_false("'9.43'.versionGreaterThan('9.43.0')", &john);
        assert_false("'9.43'.versionLessThan('9.43.0')", &john);
    }

    #[test]
    fn a_version_that_is_not_a_version_is_undefined() {
        let beta = context(&[("device.provider.oktaVerify.version", "beta".into())]);
        let reason = undefined("device.provider.oktaVerify.version.versionGreaterThan('9.43')", &beta);
        assert_eq!(
            reason.to_string(),
            "device.provider.oktaVerify.version is not a version"
        );
        assert_eq!(
            undefined(
                "'9.1'.versionLessThan(user.profile.v)",
                &context(&[("user.profile.v", "x".into())])
            )
            .path(),
            Some("user.profile.v")
        );
    }

    #[test]
    fn conversions_follow_okta_examples() {
        let john = john();
        assert_true("user.profile.stringDouble.toInteger() == 1", &john);
        assert_true("'-2147483649'.toInteger() == 2147483647", &john);
        assert_true("user.profile.stringDouble.toNumber() == 1.1", &john);
        assert_true("'1.7'.toNumber() == 1.7", &john);
        assert_true("1.1.toInteger() == 1", &john);
        assert_true("2147483647.7.toInteger() == -2147483648", &john);
        assert_eq!(
            undefined("user.profile.email.toInteger() == 1", &john).kind(),
            UndefinedKind::InvalidValue
        );
        assert_eq!(
            undefined("'123This is a test'.toNumber() == 1", &john).kind(),
            UndefinedKind::InvalidValue
        );
        assert_eq!(
            undefined("'NaN'.toNumber() == 1", &john).kind(),
            UndefinedKind::InvalidValue
        );
    }

    #[test]
    fn classic_static_helpers_work_on_their_first_argument() {
        let john = john();
        assert_true("String.stringContains('This is a test', 'test')", &john);
        assert_false("String.stringContains('This is a test', 'doesntExist')", &john);
        assert_true("String.len('This') == 4", &john);
        assert_true("String.toUpperCase('This') == 'THIS'", &john);
        assert_true("String.toLowerCase('ThiS') == 'this'", &john);
        assert_true("String.substringBefore('abc@okta.com', '@') == 'abc'", &john);
        assert_true("String.substringAfter('abc@okta.com', '@') == 'okta.com'", &john);
        assert_true("String.substring('This is a test', 2, 9) == 'is is a'", &john);
        assert_true("String.removeSpaces('This is a test') == 'Thisisatest'", &john);
        assert_true(
            "String.replace('This is a test', 'is', 'at') == 'That at a test'",
            &john,
        );
        assert_true(
            "String.replaceFirst('This is a test', 'is', 'at') == 'That is a test'",
            &john,
        );
        assert_true("String.append('This is', ' a test') == 'This is a test'", &john);
        assert_true("Arrays.contains({10, 20, 30}, 10)", &john);
        assert_false("Arrays.contains({10, 20, 30}, 50)", &john);
        assert_true("Arrays.size({10, 20, 30}) == 3", &john);
        assert_false("Arrays.isEmpty({10, 20})", &john);
        assert_true("Convert.toInt('1234') == 1234", &john);
        assert_true("Convert.toInt(123.6) == 124", &john);
        assert_true("Convert.toNum('3.141') == 3.141", &john);
    }

    #[test]
    fn static_helpers_check_their_first_argument_too() {
        assert_refused(
            "String.len(3) == 1",
            "String.len needs a string as its first argument, not a number",
        );
        assert_refused("Arrays.size('abc') == 3", "Arrays.size needs a list");
        assert_refused("String.len() == 1", "needs arguments");
        assert_refused(
            "String.substringBefore('a') == 'a'",
            "String.substringBefore takes 2 arguments, not 1",
        );
        assert_refused("String.join(',', 'a') == 'a'", "String.join is not supported");
    }
}

mod groups {
    use super::*;

    #[test]
    fn a_group_id_or_any_of_a_set_of_ids_matches() {
        let john = john();
        assert_true("user.isMemberOf({'group.id': '00gjitX9HqABSoqTB0g3'})", &john);
        assert_false("user.isMemberOf({'group.id': '00gNOTAMEMBER0000000'})", &john);
        assert_true(
            "user.isMemberOf({'group.id': {'00gNOTAMEMBER0000000', '00garwpuyxHaWOkdV0g4'}})",
            &john,
        );
        assert_false("user.isMemberOf({'group.id': '00gjitX9HqABSoqTB0'})", &john);
    }

    #[test]
    fn a_name_matches_exactly_or_by_prefix() {
        let john = john();
        assert_true(
            "user.isMemberOf({'group.profile.name': 'West Coast', 'operator': 'STARTS_WITH' })",
            &john,
        );
        assert_false(
            "user.isMemberOf({'group.profile.name': 'West Coast', 'operator': 'EXACT' })",
            &john,
        );
        assert_true(
            "user.isMemberOf({'group.profile.name': 'West Coast Users', 'operator': 'EXACT'})",
            &john,
        );
        assert_false(
            "user.isMemberOf({'group.profile.name': 'west coast users', 'operator': 'EXACT'})",
            &john,
        );
        assert_true(
            "user.isMemberOf({'operator': 'EXACT', 'group.profile.name': {'Nope', 'Everyone'}})",
            &john,
        );
    }

    #[test]
    fn a_name_without_an_operator_matches_by_prefix_as_okta_documents() {
        let john = john();
        assert_true("user.isMemberOf({'group.profile.name': 'West Coast'})", &john);
        assert_false("user.isMemberOf({'group.profile.name': 'East Coast'})", &john);
    }

    #[test]
    fn several_criteria_must_all_hold_for_one_group() {
        let john = john();
        assert_true(
            "user.isMemberOf({'group.id': {'00gjitX9HqABSoqTB0g3', '00garwpuyxHaWOkdV0g4'}}, {'group.profile.name': 'Engineering'})",
            &john,
        );
        assert_false(
            "user.isMemberOf({'group.id': '00gjitX9HqABSoqTB0g3'}, {'group.profile.name': 'West Coast'})",
            &john,
        );
    }

    #[test]
    fn a_user_in_no_groups_is_a_member_of_none() {
        assert_false("user.isMemberOf({'group.profile.name': ''})", &Context::default());
        assert_true(
            "!user.isMemberOf({'group.id': '00gjitX9HqABSoqTB0g3'})",
            &Context::default(),
        );
    }

    #[test]
    fn criteria_are_checked_when_parsed() {
        assert_refused(
            "user.isMemberOf({'group.type': 'APP_GROUP'})",
            "group.type is not supported",
        );
        assert_refused(
            "user.isMemberOf({'group.id': 'x', 'operator': 'EXACT'})",
            "only to 'group.profile.name'",
        );
        assert_refused(
            "user.isMemberOf({'group.profile.name': 'x', 'operator': 'CONTAINS'})",
            "'EXACT' or 'STARTS_WITH'",
        );
        assert_refused("user.isMemberOf({'group.name': 'x'})", "not a criterion key");
        assert_refused(
            "user.isMemberOf({'group.id': 'x', 'group.profile.name': 'y'})",
            "one key",
        );
        assert_refused("user.isMemberOf({'operator': 'EXACT'})", "names no");
        assert_refused("user.isMemberOf('00g1')", "takes criteria");
        assert_refused("user.isMemberOf({'group.id': {}})", "quoted strings");
        assert_refused("user.isMemberOf({'group.id': 7})", "quoted string");
        assert_refused("user.getGroups({'group.id': 'x'}).size() > 0", "use user.isMemberOf");
    }

    #[test]
    fn the_expression_says_it_reads_groups() {
        assert!(parse("user.isMemberOf({'group.id': 'x'})").reads_groups());
        assert!(!parse("user.profile.a == 'x'").reads_groups());
    }
}

mod dates {
    use super::*;

    /// Okta's example `user.created`, 2015-07-30T23:58:32.000Z.
    const CREATED: &str = "'1438300712000'.parseUnixTime()";

    #[test]
    fn now_is_the_clock_the_caller_passes() {
        let none = Context::default();
        assert_true("DateTime.now().toUnix() == '1438363117979'", &none);
        assert_true("Time.now().toString() == '2015-07-31T17:18:37.979Z'", &none);
    }

    #[test]
    fn parsing_follows_okta_examples() {
        let none = Context::default();
        assert_true("'130828367179790000'.parseWindowsTime() == DateTime.now()", &none);
        assert_true(
            "'1438377580979'.parseUnixTime().toString() == '2015-07-31T21:19:40.979Z'",
            &none,
        );
        assert_true(
            "'2015-06-17T00:23:19.676Z'.parseStringTime().toUnix() == '1434500599676'",
            &none,
        );
        assert_eq!(
            undefined("'yesterday'.parseUnixTime() < DateTime.now()", &none).kind(),
            UndefinedKind::InvalidValue
        );
        assert_eq!(
            undefined("'17 June 2015'.parseStringTime() < DateTime.now()", &none).kind(),
            UndefinedKind::InvalidValue
        );
    }

    #[test]
    fn arithmetic_follows_okta_examples() {
        let none = Context::default();
        let cases = [
            (format!("{CREATED}.plusDays(2)"), "2015-08-01T23:58:32Z"),
            (format!("{CREATED}.plusHours(-1)"), "2015-07-30T22:58:32Z"),
            (format!("{CREATED}.plusMinutes(0)"), "2015-07-30T23:58:32Z"),
            (format!("{CREATED}.plusSeconds(28)"), "2015-07-30T23:59Z"),
            ("Time.now().minusDays(3)".to_owned(), "2015-07-28T17:18:37.979Z"),
            ("Time.now().minusHours(100)".to_owned(), "2015-07-27T13:18:37.979Z"),
            ("Time.now().minusMinutes(-1)".to_owned(), "2015-07-31T17:19:37.979Z"),
            ("Time.now().minusSeconds(2)".to_owned(), "2015-07-31T17:18:35.979Z"),
        ];
        for (expression, expected) in cases {
            assert_true(&format!("{expression}.toString() == '{expected}'"), &none);
        }
        assert_true(&format!("{CREATED}.toWindows() == '130827743120000000'"), &none);
    }

    #[test]
    fn within_measures_distance_from_now_as_okta_documents() {
        let none = Context::default();
        assert_true(&format!("{CREATED}.withinDays(1)"), &none);
        assert_true(&format!("{CREATED}.withinHours(100)"), &none);
        assert_false(&format!("{CREATED}.withinMinutes(2)"), &none);
        assert_false(&format!("{CREATED}.withinSeconds(100)"), &none);
        assert_true("DateTime.now().plusMinutes(5).withinMinutes(5)", &none);
    }

    #[test]
    fn date_times_compare_with_relational_operators() {
        let signals = context(&[
            ("device.provider.zta.expirationDateTime", "1438363200000".into()),
            ("device.provider.zta.issuedDateTime", 1_438_363_000_000.0.into()),
        ]);
        assert_true(
            "device.provider.zta.expirationDateTime.parseUnixTime() > DateTime.now()",
            &signals,
        );
        assert_true(
            "device.provider.zta.issuedDateTime.parseUnixTime() < DateTime.now()",
            &signals,
        );
        assert_true(
            "DateTime.now() >= DateTime.now().minusSeconds(1) && DateTime.now() == Time.now()",
            &signals,
        );
        assert_true("DateTime.now().minusHours(1) < DateTime.now()", &signals);
    }

    #[test]
    fn arithmetic_that_leaves_the_calendar_is_undefined() {
        let none = Context::default();
        assert_eq!(
            undefined(
                "DateTime.now().plusDays(2147483647).plusDays(2147483647).toString() == ''",
                &none
            )
            .kind(),
            UndefinedKind::InvalidValue
        );
        assert_eq!(
            undefined("DateTime.now().plusDays(1.5) > DateTime.now()", &none).kind(),
            UndefinedKind::InvalidValue
        );
    }

    #[test]
    fn unsupported_time_functions_are_refused_with_a_reason() {
        assert_refused(
            "DateTime.now().toZone('Asia/Tokyo') == DateTime.now()",
            "time-zone database",
        );
        assert_refused(
            "DateTime.now().toString('MM/dd/yyyy') == '07/31/2015'",
            "format pattern",
        );
        assert_refused(
            "'17 June 2015'.parseStringTime('dd MMMM yyyy') < DateTime.now()",
            "format pattern",
        );
        assert_refused("DateTime.now().isBefore(DateTime.now())", "compare date-times with <");
        assert_refused("DateTime.parse('x') == 1", "DateTime.now() is");
    }
}

mod parse_time_checks {
    use super::*;

    #[test]
    fn unknown_attribute_roots_are_refused_where_they_start() {
        let error = parse_error("user.profile.a == 'x' && foo.bar == 1");
        assert_eq!((error.line, error.column), (1, 26));
        assert!(error.reason.contains("unknown name 'foo'"), "{error}");
        for source in [
            "user.created < DateTime.now()",
            "user.profile == 'x'",
            "user.profile.a.b == 'x'",
            "device.provider.azt.playProtectVerdict == 'NO_ISSUES'",
            "device.provider.oktaVerify.build == '1'",
            "security.risk == 'LOW'",
            "device == 'x'",
        ] {
            assert_refused(source, "is not an attribute policies can read");
        }
    }

    #[test]
    fn every_documented_attribute_root_is_accepted() {
        let source = "user.id == 'x' || user.status == 'ACTIVE' || user.profile.department == 'x' \
            || device.profile.platform == 'WINDOWS' || device.assurance.screenLockType == 'BIOMETRIC' \
            || device.provider.wsc.fireWall == 'GOOD' || device.provider.zta.overall >= 60 \
            || device.provider.oktaVerify.version.versionGreaterThan('9.43') || device.id == 'x' \
            || device.status == 'ACTIVE' || device.registered || device.managed \
            || security.risk.level == 'HIGH' || security.behaviors.contains('New IP') \
            || user.profile.department == 'y'";
        let expression = parse(source);
        let paths: Vec<&str> = expression.attribute_paths().collect();
        assert_eq!(paths.len(), 14, "user.profile.department is listed once: {paths:?}");
        assert_eq!(paths.first(), Some(&"user.id"));
    }

    #[test]
    fn methods_are_checked_by_name_arity_and_type() {
        assert_refused(
            "device.provider.oktaVerify.version.versionGreaterThan()",
            "takes 1 argument, not 0",
        );
        assert_refused(
            "device.provider.oktaVerify.version.versionGreaterThan('9', '1')",
            "takes 1 argument, not 2",
        );
        assert_refused(
            "device.provider.oktaVerify.version.versionGreaterThan('latest')",
            "not a version",
        );
        assert_refused(
            "device.provider.oktaVerify.version.versionGreaterThan(9.43)",
            "needs a string here, not a number",
        );
        assert_refused("user.profile.email.frobnicate()", "unknown method 'frobnicate'");
        assert_refused("'abc'.size() == 3", "size needs a list to work on, not a string");
        assert_refused("'abc'.substring() == 'a'", "takes 1 or 2 arguments, not 0");
        assert_refused("security.behaviors.length() == 2", "length needs a string");
        assert_refused("'abc'.contains(1)", "contains on a string needs a string");
        assert_refused("user.profile.strArray.add('x').size() == 3", "builds a new array");
        assert_refused(
            "user.profile.country.parseCountryCode().toAlpha2() == 'US'",
            "country table",
        );
        assert_refused("'abc'.length == 3", "only method calls follow");
        assert_refused("user.profile.emails[0] == 'x'", "indexing");
    }

    #[test]
    fn known_types_are_checked_before_evaluation() {
        assert_refused("'a' == 1", "cannot compare a string with a number");
        assert_refused("true < false", "orders numbers, strings or date-times, not a boolean");
        assert_refused("{1} == {1}", "lists are not compared");
        assert_refused("true + 1 == 2", "+ adds numbers or joins strings, not a boolean");
        assert_refused("'a' + 1 == 'a1'", "cannot join a string and a number");
        assert_refused("'a' - 'b' == ''", "- needs numbers");
        assert_refused("!'a'", "! needs a condition");
        assert_refused("'a' && true", "&& needs a condition");
        assert_refused("1 ? true : false", "condition of ?:");
        assert_refused("-'a' == 1", "negates a number");
        assert_refused("security.risk.level == 1", "cannot compare");
        assert_refused("'abc'", "must be a condition");
        assert_refused("1 + 2", "must be a condition");
        assert_refused("null", "must be a condition");
    }

    #[test]
    fn comparing_okta_verify_versions_as_text_is_refused() {
        assert_refused(
            "device.provider.oktaVerify.version > '10.3.1'",
            "use versionGreaterThan or versionLessThan",
        );
        assert_refused(
            "'10.3.1' <= device.provider.oktaVerify.version",
            "use versionGreaterThan or versionLessThan",
        );
    }

    #[test]
    fn syntax_mistakes_are_explained() {
        assert_refused("", "empty");
        assert_refused("   \n ", "empty");
        assert_refused("user.profile.a = 'x'", "use == to compare");
        assert_refused("user.profile.a == 'x' & true", "use &&");
        assert_refused("(true", "expected ')'");
        assert_refused("true)", "expected an operator or the end, found ')'");
        assert_refused("user.profile.a == ", "found the end of the expression");
        assert_refused(
            "user.realmId == \u{201c}o4cbj6ybZl1QShj0g7\u{201d}",
            "typographic quote",
        );
        assert_refused("1 / 2 == 0.5", "division is not supported");
        assert_refused(
            "{'a': 1}.size() == 1",
            "map is only used as a user.isMemberOf criterion",
        );
        assert_refused("{user.profile.a}.size() == 1", "list items are literal");
        assert_refused("true ? false", "':' to go with '?'");
        assert_refused("T(java.lang.Runtime).getRuntime() == null", "unknown name 'T'");
    }
}

mod positions {
    use super::*;

    #[test]
    fn errors_report_line_and_column_in_a_multi_line_source() {
        let error = parse_error("user.profile.department == 'Engineering'\n  && device.managed == true\n  && foo.bar");
        assert_eq!((error.line, error.column), (3, 6));
        assert!(
            error.to_string().starts_with("line 3, column 6: unknown name 'foo'"),
            "{error}"
        );

        let error = parse_error("device.registered == true &&\n\tuser.profile.email.contains('@x.com'\n");
        assert_eq!((error.line, error.column), (3, 1));
        assert!(error.reason.contains("expected ',' or ')'"), "{error}");

        let error = parse_error("true &&\n  'unterminated");
        assert_eq!((error.line, error.column), (2, 3));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let error = parse_error("'日本語' == 'x' && 'é'.frob()");
        assert_eq!((error.line, error.column), (1, 21));
    }

    #[test]
    fn method_errors_point_at_the_method_name() {
        let error = parse_error("device.provider.oktaVerify.version.versionGreaterThan()");
        assert_eq!((error.line, error.column), (1, 36));
    }
}

mod limits {
    use super::*;

    #[test]
    fn nesting_deeper_than_the_limit_is_refused_when_parsed() {
        let nested = |levels: usize| format!("{}true{}", "(".repeat(levels), ")".repeat(levels));
        assert_true(&nested(MAX_DEPTH - 1), &Context::default());
        let error = parse_error(&nested(MAX_DEPTH));
        assert!(error.reason.contains("nests more than 32 levels"), "{error}");
        assert_eq!((error.line, error.column), (1, 33));

        let negations = |count: usize| format!("{}true", "!".repeat(count));
        assert!(Expression::parse(&negations(MAX_DEPTH - 1)).is_ok());
        assert_refused(&negations(MAX_DEPTH), "nests more than");

        let chain = format!("'a'{} == 'a'", ".toLowerCase()".repeat(MAX_DEPTH));
        assert_refused(&chain, "nests more than");

        let lists = format!("{}{}.size() == 1", "{".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert_refused(&lists, "nests more than");
    }

    #[test]
    fn pathological_nesting_fails_fast_without_exhausting_the_stack() {
        for opener in ["(", "!", "-", "{", "'a'.contains("] {
            let source: String = opener.repeat(MAX_SOURCE_BYTES / opener.len());
            assert!(Expression::parse(&source).is_err(), "{opener}");
        }
    }

    #[test]
    fn a_long_or_chain_costs_no_depth_but_stops_at_the_source_limit() {
        let chain = |count: usize| format!("{}true", "false || ".repeat(count));
        let fits = chain((MAX_SOURCE_BYTES - 4) / "false || ".len());
        assert!(fits.len() <= MAX_SOURCE_BYTES);
        assert_true(&fits, &Context::default());

        let too_long = chain(MAX_SOURCE_BYTES / "false || ".len() + 1);
        let error = parse_error(&too_long);
        assert!(error.reason.contains("the limit is 4096"), "{error}");
        assert_eq!((error.line, error.column), (1, 4097));
    }

    #[test]
    fn a_long_chain_over_large_attributes_stops_at_the_step_limit() {
        let essay = context(&[("user.profile.bio", "x".repeat(1 << 20).into())]);
        let clause = "user.profile.bio.contains('y')";
        let source = format!("({}) || true", [clause; 16].join(" || "));
        let reason = undefined(&source, &essay);
        assert_eq!(reason.kind(), UndefinedKind::StepLimit);
        assert!(reason.to_string().contains("step limit"), "{reason}");
    }

    #[test]
    fn the_step_limit_is_not_absorbed_by_and() {
        let essay = context(&[("user.profile.bio", "x".repeat(1 << 22).into())]);
        let reason = undefined("user.profile.bio.length() > 0 && false", &essay);
        assert_eq!(reason.kind(), UndefinedKind::StepLimit);
    }

    #[test]
    fn building_huge_strings_is_charged_before_it_happens() {
        let essay = context(&[("user.profile.bio", "x".repeat(1 << 16).into())]);
        let source = format!("user.profile.bio.replace('x', '{}') == ''", "x".repeat(64));
        let reason = undefined(&source, &essay);
        assert_eq!(reason.kind(), UndefinedKind::StepLimit);
    }

    #[test]
    fn many_groups_are_charged_for() {
        let crowd = Context {
            groups: (0..100_000)
                .map(|n| group(&format!("00g{n}"), &format!("Group {n}")))
                .collect(),
            ..Context::default()
        };
        assert_true("user.isMemberOf({'group.id': '00g99999'})", &crowd);
        let repeated = ["user.isMemberOf({'group.id': 'none'})"; 8].join(" || ");
        assert_eq!(undefined(&repeated, &crowd).kind(), UndefinedKind::StepLimit);
    }
}

mod api {
    use super::*;

    #[test]
    fn an_expression_is_cheap_to_share_between_threads() {
        fn shareable<T: Send + Sync + Clone + std::fmt::Debug>() {}
        shareable::<Expression>();
        let expression = parse("device.managed == true");
        let copy = expression.clone();
        assert_eq!(copy, expression);
        assert_eq!(format!("{expression:?}"), "Expression(\"device.managed == true\")");
        assert_eq!(expression.source(), "device.managed == true");
    }

    #[test]
    fn an_expression_serializes_as_its_source_and_parses_when_read() {
        let expression = parse("user.profile.a == 'x'");
        let json = serde_json::to_string(&expression).unwrap();
        assert_eq!(json, "\"user.profile.a == 'x'\"");
        let back: Expression = serde_json::from_str(&json).unwrap();
        assert_eq!(back, expression);
        let bad = serde_json::from_str::<Expression>("\"foo.bar == 1\"").unwrap_err();
        assert!(bad.to_string().contains("line 1, column 1"), "{bad}");
    }

    #[test]
    fn attribute_values_read_naturally_from_json() {
        let values: HashMap<String, AttributeValue> =
            serde_json::from_str(r#"{"a": true, "b": 1.5, "c": "x", "d": ["a", "b"], "e": 3}"#).unwrap();
        assert_eq!(values.get("a"), Some(&AttributeValue::Bool(true)));
        assert_eq!(values.get("b"), Some(&AttributeValue::Number(1.5)));
        assert_eq!(values.get("c"), Some(&AttributeValue::String("x".into())));
        assert_eq!(values.get("d"), Some(&strings(&["a", "b"])));
        assert_eq!(values.get("e"), Some(&AttributeValue::Number(3.0)));
    }

    #[test]
    fn a_parse_error_displays_its_position() {
        let error = ParseError {
            line: 2,
            column: 7,
            reason: "unknown name 'foo'".into(),
        };
        assert_eq!(error.to_string(), "line 2, column 7: unknown name 'foo'");
    }
}
