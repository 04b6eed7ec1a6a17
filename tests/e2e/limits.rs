//! Rate limits per key, per workspace and per route class, with the IETF draft's headers and a
//! 429 naming the limit; failed authentications limited per source without locking a valid
//! key out. (Two API processes sharing one limit: `crates/mailroom/tests/cli`.)

use mailroom_api::{
    ApiLimits,
    limits::{ClassLimits, Rate, RateLimits},
};
use mailroom_domain::{Grant, Role};
use mailroom_tests::{Options, TestApp};
use serde_json::{Value, json};

fn header(resp: &reqwest::Response, name: &str) -> Option<u64> {
    resp.headers().get(name)?.to_str().ok()?.parse().ok()
}

fn small_limits() -> Options {
    let slow = |burst| Rate { per_minute: 6, burst };
    let rate = RateLimits {
        sends: ClassLimits { key: slow(3), workspace: slow(50) },
        reads: ClassLimits { key: slow(5), workspace: slow(8) },
        writes: ClassLimits { key: slow(5), workspace: slow(50) },
        failed_auth: slow(3),
    };
    let limits = ApiLimits { rate: Some(rate), ..Options::default().limits };
    Options { in_process_worker: false, limits, ..Options::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_limit_gets_429_with_the_limit_its_usage_and_when_it_resets() {
    let app = TestApp::spawn_with(small_limits()).await;
    let mut remaining = vec![];
    for _ in 0..5 {
        let resp = app.get("/v1/events").send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "ratelimit-limit"), Some(5));
        remaining.push(header(&resp, "ratelimit-remaining").unwrap());
        assert!(header(&resp, "ratelimit-reset").unwrap() <= 50);
    }
    assert_eq!(remaining, [4, 3, 2, 1, 0]);
    let resp = app.get("/v1/events").send().await.unwrap();
    assert_eq!(resp.status(), 429);
    let retry = header(&resp, "retry-after").expect("Retry-After");
    assert!((1..=10).contains(&retry), "one request is earned every 10 s: {retry}");
    assert_eq!((header(&resp, "ratelimit-remaining"), header(&resp, "ratelimit-limit")), (Some(0), Some(5)));
    let body: Value = resp.json().await.unwrap();
    let e = &body["error"];
    assert_eq!(e["code"], "rate_limited");
    assert_eq!(e["limit"], json!({ "name": "reads per API key", "per_minute": 6, "burst": 5 }));
    assert_eq!(e["usage"], json!({ "used": 5, "remaining": 0 }));
    assert!(e["reset_at"].as_str().is_some() && e["message"].as_str().unwrap().contains("retry in"), "{body}");

    // Another class of the same key is its own bucket; another key has its own, up to the
    // workspace's (8 reads: 5 taken above, the 6th was refused and took nothing).
    let resp = app.post("/v1/webhooks").json(&json!({ "url": "https://1.1.1.1/hook" })).send().await;
    assert_eq!(resp.unwrap().status(), 201);
    let other = app.key_with(Grant::Role(Role::Owner)).await;
    let mut statuses = vec![];
    for _ in 0..4 {
        let resp = app.http.get(format!("{}/v1/events", app.base)).bearer_auth(&other).send().await.unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 {
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["limit"]["name"], "reads per workspace", "{body}");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentications_are_limited_per_source_and_never_lock_the_real_key_out() {
    let app = TestApp::spawn_with(small_limits()).await;
    let wrong = |token: &'static str| app.http.get(format!("{}/v1/events", app.base)).bearer_auth(token).send();
    let mut statuses = vec![];
    for _ in 0..5 {
        statuses.push(wrong("mr_guess_guess_000000").await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    let resp = wrong("mr_guess_guess_000000").await.unwrap();
    assert!(header(&resp, "retry-after").is_some());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["limit"]["name"], "failed authentications per source address", "{body}");
    // The real key, from the same address, right after.
    let resp = app.get("/v1/events").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // The limit lives in the database, shared by every replica: one bucket for the address.
    let buckets = app.count("SELECT count(*) FROM rate_buckets WHERE bucket LIKE 'source:%'").await;
    assert_eq!(buckets, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_of_a_new_key_share_one_bucket() {
    let app = TestApp::spawn_with(small_limits()).await;
    let key = app.key_with(Grant::Role(Role::Analyst)).await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let req = app.http.get(format!("{}/v1/events", app.base)).bearer_auth(&key);
        calls.spawn(async move { req.send().await.unwrap().status().as_u16() });
    }
    let statuses: Vec<u16> = calls.join_all().await;
    let served = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(served, 5, "a burst of 5, however the first requests race: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 35);
    app.stop().await;
}
