//! Retry and wait behaviour of the Route 53 calls, driven by `aws-smithy-mocks` (the SDK's own
//! test rules): moto answers INSYNC at once and never throttles, so these sequences cannot be
//! produced against it. Errors are given as the HTTP responses Route 53 sends (status and
//! XML error body), so the SDK's own deserializer turns them into error codes, as in
//! production.

use std::time::{Duration, Instant};

use aws_sdk_route53::operation::change_resource_record_sets::ChangeResourceRecordSetsOutput;
use aws_sdk_route53::operation::get_change::GetChangeOutput;
use aws_sdk_route53::primitives::DateTime;
use aws_sdk_route53::types::{ChangeInfo, ChangeStatus};
use aws_sdk_route53::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use dns_sidecar_route53::address::RecordType;
use dns_sidecar_route53::record::OwnedRecord;
use dns_sidecar_route53::route53::Zone;

fn error_xml(code: &str, message: &str) -> Option<String> {
    Some(format!(
        "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
         <Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
         <RequestId>00000000-test</RequestId></ErrorResponse>"
    ))
}

fn info(status: ChangeStatus) -> ChangeInfo {
    ChangeInfo::builder()
        .id("/change/C0TEST")
        .status(status)
        .submitted_at(DateTime::from_secs(1_700_000_000))
        .build()
        .expect("change info")
}

fn get_change(status: ChangeStatus) -> GetChangeOutput {
    GetChangeOutput::builder().change_info(info(status)).build()
}

fn changed() -> ChangeResourceRecordSetsOutput {
    ChangeResourceRecordSetsOutput::builder()
        .change_info(info(ChangeStatus::Pending))
        .build()
}

fn record() -> Vec<OwnedRecord> {
    vec![OwnedRecord {
        name: "jumpbox.eu-west-1.example.com".into(),
        rtype: RecordType::A,
        ttl: 60,
        value: "52.95.110.1".parse().expect("ip"),
        set_identifier: None,
    }]
}

/// As in production (`lifecycle::Aws::load`): the SDK's own retries are off, ours decide.
fn no_sdk_retries(c: aws_sdk_route53::config::Builder) -> aws_sdk_route53::config::Builder {
    c.retry_config(aws_sdk_route53::config::retry::RetryConfig::disabled())
}

/// Our zone, with a client answered by `rule` alone and short backoffs.
fn zone(rule: &Rule) -> Zone {
    let client = mock_client!(aws_sdk_route53, RuleMode::MatchAny, [rule], no_sdk_retries);
    let mut z = Zone::new(client, "Z0TESTZONE");
    z.retry_base = Duration::from_millis(5);
    z.retry_max = Duration::from_millis(40);
    z.poll_base = Duration::from_millis(5);
    z.poll_max = Duration::from_millis(20);
    z
}

fn deadline(ms: u64) -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_millis(ms)
}

#[tokio::test]
async fn throttling_and_prior_request_not_complete_are_retried_until_success() {
    let rule = mock!(Client::change_resource_record_sets)
        .sequence()
        .http_status(400, error_xml("Throttling", "Rate exceeded"))
        .http_status(
            400,
            error_xml(
                "PriorRequestNotComplete",
                "The request was rejected because Route 53 was still processing a prior request.",
            ),
        )
        .http_status(503, None)
        .output(changed)
        .build();
    let z = zone(&rule);
    let id = z
        .upsert(&record(), "test", deadline(5_000))
        .await
        .expect("succeeds after retries");
    assert_eq!(id, "/change/C0TEST");
    assert_eq!(rule.num_calls(), 4);
}

#[tokio::test]
async fn get_change_is_polled_from_pending_to_insync() {
    let rule = mock!(Client::get_change)
        .sequence()
        .output(|| get_change(ChangeStatus::Pending))
        .times(3)
        .output(|| get_change(ChangeStatus::Insync))
        .build();
    let z = zone(&rule);
    z.wait_insync("/change/C0TEST", deadline(5_000))
        .await
        .expect("reaches INSYNC");
    assert_eq!(rule.num_calls(), 4);
}

#[tokio::test]
async fn pending_past_the_deadline_fails_naming_the_setting() {
    let rule = mock!(Client::get_change)
        .sequence()
        .output(|| get_change(ChangeStatus::Pending))
        .repeatedly()
        .build();
    let z = zone(&rule);
    let started = Instant::now();
    let e = z
        .wait_insync("/change/C0TEST", deadline(300))
        .await
        .expect_err("never INSYNC");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        e.message.contains("PENDING") && e.message.contains("DNS_TIMEOUT"),
        "{e}"
    );
    assert!(rule.num_calls() >= 3, "polled {} times", rule.num_calls());
}

#[tokio::test]
async fn throttling_that_outlasts_the_deadline_gives_up_in_time() {
    let rule = mock!(Client::change_resource_record_sets)
        .sequence()
        .http_status(400, error_xml("Throttling", "Rate exceeded"))
        .repeatedly()
        .build();
    let z = zone(&rule);
    let started = Instant::now();
    let e = z
        .upsert(&record(), "test", deadline(1_500))
        .await
        .expect_err("never succeeds");
    // Gives up at the deadline, not long after (the next delay would have passed it).
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(e.message.contains("[Throttling]"), "{e}");
    assert!(e.message.contains("still failing after"), "{e}");
    assert!(rule.num_calls() >= 3, "only {} attempts", rule.num_calls());
}

async fn fails_fast(status: u16, code: &str, expect: &[&str]) {
    let rule = mock!(Client::change_resource_record_sets)
        .sequence()
        .http_status(status, error_xml(code, "refused for the test"))
        .output(changed)
        .build();
    let z = zone(&rule);
    let started = Instant::now();
    let e = z
        .upsert(&record(), "test", deadline(10_000))
        .await
        .expect_err("must fail");
    assert_eq!(rule.num_calls(), 1, "{code} was retried");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{code}: {:?}",
        started.elapsed()
    );
    assert!(e.message.contains(&format!("[{code}]")), "{e}");
    for needle in expect {
        assert!(e.message.contains(needle), "{code}: no {needle:?} in: {e}");
    }
}

#[tokio::test]
async fn invalid_change_batch_fails_at_once_with_the_cause() {
    fails_fast(
        400,
        "InvalidChangeBatch",
        &["DNS_RECORD_NAME", "refused for the test"],
    )
    .await;
}

#[tokio::test]
async fn access_denied_fails_at_once_naming_the_iam_action() {
    fails_fast(
        403,
        "AccessDenied",
        &[
            "route53:ChangeResourceRecordSets",
            "hostedzone/Z0TESTZONE",
            "iam-policy.json",
        ],
    )
    .await;
}

#[tokio::test]
async fn unknown_zone_fails_at_once_naming_the_setting() {
    fails_fast(404, "NoSuchHostedZone", &["DNS_HOSTED_ZONE_ID=Z0TESTZONE"]).await;
}
