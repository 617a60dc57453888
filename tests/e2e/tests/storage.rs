//! The default SQLite store as `spin up` keeps it: nothing secret at rest, data survives a
//! restart, and every entry is namespaced.

use e2e::{unique_user, App};
use spin_host::{KvBackend, SqliteBackend};

#[test]
fn no_plaintext_key_is_in_the_sqlite_file_and_keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(".spin/sqlite_key_value.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let user = unique_user("persistent");
    let mut secrets = vec![];
    {
        let app = App::start_on_sqlite_file(&db);
        for i in 0..6 {
            let created = app.create_ok(&user, &format!("key {i}"), &["read", "write"]);
            secrets.push((
                created["id"].as_str().unwrap().to_owned(),
                created["key"].as_str().unwrap().to_owned(),
            ));
        }
        for (_, key) in &secrets {
            assert!(app.verifies(key));
        }
        for (id, _) in &secrets[..2] {
            assert_eq!(app.delete(&user, id).status, 200);
        }
    }
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(db.parent().unwrap()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let text = String::from_utf8_lossy(&bytes);
    for (_, key) in &secrets {
        let random_part = &key[key.len() - 49..];
        assert!(
            !text.contains(key.as_str()) && !text.contains(random_part),
            "a plaintext key is at rest"
        );
    }

    let backend = SqliteBackend::open(&db).unwrap();
    let keys = backend.keys("default").unwrap();
    assert!(!keys.is_empty());
    assert!(
        keys.iter().all(|k| k.starts_with("apikeys/v1/")),
        "{keys:?}"
    );

    drop(backend);
    let app = App::start_on_sqlite_file(&db);
    assert_eq!(app.listed_ids(&user).len(), 4);
    for (_, key) in &secrets[2..] {
        assert!(app.verifies(key), "a key was lost across the restart");
    }
    for (_, key) in &secrets[..2] {
        assert!(!app.verifies(key));
    }
}
