//! Scale-out on one Redis, as deployed: instances of the app that share nothing but the store,
//! a management tier (create, list, delete) and a verify tier (`--component-id verify`).

use e2e::{unique_user, App};
use spin_host::{RedisCasAnswers, RedisServer};
use std::collections::BTreeSet;

const MANAGEMENT: &[&str] = &["create", "list", "delete"];
const VERIFY: &[&str] = &["verify"];

/// Two management instances and one verify instance on one Redis server.
struct Deployment {
    management: [App; 2],
    edge: App,
    // Dropped last: the instances stop before their store.
    _redis: RedisServer,
}

fn deploy(answers: RedisCasAnswers) -> Deployment {
    let redis = RedisServer::start().expect("redis-server starts");
    Deployment {
        management: [
            App::start_on_redis(&redis, answers, MANAGEMENT),
            App::start_on_redis(&redis, answers, MANAGEMENT),
        ],
        edge: App::start_on_redis(&redis, answers, VERIFY),
        _redis: redis,
    }
}

fn tiers_serve_only_their_components(answers: RedisCasAnswers) {
    let d = deploy(answers);
    let user = unique_user("tiers");
    assert_eq!(d.edge.create(&user, "k", &["read"]).status, 404);
    assert_eq!(d.edge.list(&user).status, 404);
    let created = d.management[0].create_ok(&user, "k", &["read"]);
    assert_eq!(
        d.management[0]
            .verify(created["key"].as_str().unwrap(), None)
            .status,
        404
    );
}

fn a_key_made_on_one_instance_verifies_on_another_until_deleted(answers: RedisCasAnswers) {
    let d = deploy(answers);
    let user = unique_user("scaled");
    let created = d.management[0].create_ok(&user, "edge key", &["read"]);
    let (id, key) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    let verified = d.edge.verify(key, Some("read"));
    assert_eq!(verified.status, 200, "{}", verified.text);
    assert_eq!(verified.body["user_id"], user.as_str());
    assert_eq!(d.management[1].listed_ids(&user), [id]);

    assert_eq!(d.management[1].delete(&user, id).status, 200);
    // The very next request on the verify tier: no cache anywhere to outlive the delete.
    assert_eq!(d.edge.verify(key, None).status, 401);
    assert!(d.management[0].listed_ids(&user).is_empty());
}

fn fifty_creates_over_two_instances_give_exactly_twenty_keys(answers: RedisCasAnswers) {
    let d = deploy(answers);
    let user = unique_user("crowd");
    let replies: Vec<e2e::Reply> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let (instance, user) = (&d.management[i % 2], &user);
                scope.spawn(move || instance.create(user, &format!("k{i}"), &["read"]))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created: Vec<&e2e::Reply> = replies.iter().filter(|r| r.status == 201).collect();
    for refused in replies.iter().filter(|r| r.status != 201) {
        assert_eq!(refused.status, 409, "{}", refused.text);
    }
    assert_eq!(created.len(), 20, "keys created out of 50 racing creates");
    let listed: BTreeSet<String> = d.management[1].listed_ids(&user).into_iter().collect();
    let ids: BTreeSet<String> = created
        .iter()
        .map(|r| r.body["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, ids, "every created key is listed, and nothing else");
    for reply in created {
        assert!(d.edge.verifies(reply.body["key"].as_str().unwrap()));
    }
    println!("scale-out: 50 creates over 2 instances → 20 created, 20 listed, 20 verifying");
}

/// Each runs against Redis as Spin 4.1 answers it and as the fixed Spin will.
macro_rules! on_both_redis_answers {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            use spin_host::RedisCasAnswers;
            #[test]
            fn redis_as_spin_4_1() {
                super::$case(RedisCasAnswers::Spin41)
            }
            #[test]
            fn redis_unwatch_fixed() {
                if e2e::skip_on_spin(
                    "emulates a fix of Spin's Redis store that real Spin does not have yet",
                ) {
                    return;
                }
                super::$case(RedisCasAnswers::UnwatchFixed)
            }
        }
    )*};
}

on_both_redis_answers!(
    tiers_serve_only_their_components,
    a_key_made_on_one_instance_verifies_on_another_until_deleted,
    fifty_creates_over_two_instances_give_exactly_twenty_keys,
);
