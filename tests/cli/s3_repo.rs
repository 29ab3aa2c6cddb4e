//! A backup root in a bucket (`repo::s3`) against a real S3 server: a backup appears only with
//! its manifest, names are claimed once, and removal (also of what a killed run left) leaves
//! no object and no upload behind.

use std::io::Write;
use std::time::Duration;

use aimem::names::SafeName;
use aimem::repo::s3::S3Repo;
use aimem::repo::{Kind, Removed, Repo};
use aimem::s3::transfer::MIN_PART;
use aimem::s3::{S3Client, S3Config, S3Location};

use super::s3_server::S3Server;

const BUCKET: &str = "backups";

fn repo(server: &S3Server, url: &str) -> S3Repo {
    let vars = server.env();
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    let config = S3Config::from_env(&lookup, BUCKET).unwrap();
    let client = S3Client::new(
        &config,
        BUCKET,
        Duration::from_secs(2),
        Duration::from_secs(10),
    )
    .unwrap();
    S3Repo::new(client, S3Location::parse(url).unwrap(), "testhost".into())
}

const MANIFEST: &str = r#"{"backup_date": "2026-12-07T10:00:00", "collections": {}}"#;

fn write(stage: &dyn aimem::repo::Staging, relative: &str, bytes: &[u8]) {
    let mut file = stage.create_file(relative).unwrap();
    file.write_all(bytes).unwrap();
    file.finish().unwrap();
}

#[test]
fn a_backup_is_listed_as_complete_only_once_its_manifest_is_written() {
    let server = S3Server::start(BUCKET);
    let repo = repo(&server, "s3://backups/aimem");
    let name = SafeName::new("2026-12-07_100000").unwrap();
    let stage = repo.begin(&name).unwrap();
    assert_eq!(
        stage.location().as_str(),
        "s3://backups/aimem/2026-12-07_100000"
    );
    let big: Vec<u8> = (0..MIN_PART + 1000).map(|i| i as u8).collect();
    write(&*stage, "qdrant/memories.snapshot", &big);
    write(&*stage, "config/.env", b"A=1\n");
    write(&*stage, "manifest.json", MANIFEST.as_bytes());
    write(&*stage, "CHECKSUMS.sha256", b"");

    let listed = repo.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].kind, Kind::Staging, "no manifest yet: incomplete");
    assert!(
        server
            .objects(BUCKET)
            .iter()
            .all(|o| !o.ends_with("manifest.json"))
    );

    // Another run wanting the same name gets the next one.
    let other = repo.begin(&name).unwrap();
    assert!(other.location().as_str().ends_with("2026-12-07_100000-2"));
    drop(other);

    let published = stage.commit().unwrap();
    assert_eq!(published.as_str(), "s3://backups/aimem/2026-12-07_100000");
    let mut listed = repo.list().unwrap();
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(listed[0].kind, Kind::Published);
    assert_eq!(
        listed[0].size_bytes,
        big.len() as u64 + 4 + MANIFEST.len() as u64
    );
    let backup = repo.open(&listed[0]).unwrap();
    assert_eq!(
        backup.manifest().unwrap().backup_date,
        "2026-12-07T10:00:00"
    );
    assert!(
        !server
            .objects(BUCKET)
            .iter()
            .any(|o| o.ends_with("2026-12-07_100000/.aimem-run.json")),
        "the run record goes once the backup is published"
    );
    let mut file = backup.open("qdrant/memories.snapshot").unwrap();
    let mut read = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut read).unwrap();
    assert_eq!(read, big);

    for found in &listed {
        assert!(matches!(repo.remove(found).unwrap(), Removed::Fully));
    }
    assert!(repo.list().unwrap().is_empty());
    assert!(
        server.objects(BUCKET).is_empty(),
        "{:?}",
        server.objects(BUCKET)
    );
}

#[test]
fn removing_what_a_killed_run_left_aborts_its_uploads() {
    let server = S3Server::start(BUCKET);
    let repo = repo(&server, "s3://backups");
    let stage = repo
        .begin(&SafeName::new("2026-12-07_110000").unwrap())
        .unwrap();
    let mut file = stage.create_file("qdrant/big.snapshot").unwrap();
    file.write_all(&vec![1u8; MIN_PART + 1]).unwrap();
    // A kill -9: nothing finishes, aborts or cleans up.
    std::mem::forget(file);
    std::mem::forget(stage);
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.pending_parts() >= 1);

    let listed = repo.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].kind, Kind::Staging);
    let record = repo.run_record(&listed[0].name).unwrap().unwrap();
    assert_eq!(record.uploads.len(), 1);
    assert_eq!(record.host, "testhost");
    assert!(matches!(repo.remove(&listed[0]).unwrap(), Removed::Fully));
    assert_eq!(server.pending_parts(), 0, "the upload was aborted");
    assert!(
        server.objects(BUCKET).is_empty(),
        "{:?}",
        server.objects(BUCKET)
    );
}

#[test]
fn a_removal_that_stopped_is_out_of_sight_and_finished_later() {
    let server = S3Server::start(BUCKET);
    let repo = repo(&server, "s3://backups/r");
    let stage = repo
        .begin(&SafeName::new("2026-12-07_120000").unwrap())
        .unwrap();
    write(&*stage, "a", b"a");
    write(&*stage, "manifest.json", MANIFEST.as_bytes());
    stage.commit().unwrap();
    // A removal killed after its mark: what is left is no backup, listed or not.
    std::fs::write(
        server.object_path(BUCKET, "r/2026-12-07_120000/.aimem-deleting"),
        b"",
    )
    .unwrap();
    assert!(repo.list().unwrap().is_empty());
    assert!(repo.finish_removals().is_empty());
    assert!(
        server.objects(BUCKET).is_empty(),
        "{:?}",
        server.objects(BUCKET)
    );
}

#[test]
fn hostile_names_in_a_bucket_are_listed_never_opened_or_used_as_paths() {
    let server = S3Server::start(BUCKET);
    let repo = repo(&server, "s3://backups/r");
    let client = repo.client();
    // A short name, a name with a backslash, a manifest at the top, an object outside.
    for key in [
        "r/x/manifest.json",
        "r/a\\b/manifest.json",
        "r/manifest.json",
        "keep",
    ] {
        client.put(key, MANIFEST.as_bytes(), false).unwrap();
    }
    // A key that climbs out is never sent (the URL would resolve it to another object).
    assert!(client.put("r/y/../../keep", b"", false).is_err());
    std::fs::create_dir_all(server.object_path(BUCKET, "r/y")).unwrap();
    std::fs::write(server.object_path(BUCKET, "r/y/file"), b"y").unwrap();

    let listed = repo.list().unwrap();
    let mut names: Vec<&str> = listed.iter().map(|f| f.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["a\\b", "x", "y"]);
    let unsafe_name = listed.iter().find(|f| f.name == "a\\b").unwrap();
    assert!(repo.open(unsafe_name).is_err());
    assert!(repo.remove(unsafe_name).is_err());
    // The catalog reads them without panicking (a short incomplete name included).
    let catalog = aimem::repo::catalog::scan_repo(&repo).unwrap();
    assert_eq!(catalog.len(), 3);
    // Removing `x` and `y` never touches `keep`, outside the root.
    for found in listed.iter().filter(|f| f.name != "a\\b") {
        repo.remove(found).unwrap();
    }
    assert!(client.head("keep").unwrap().is_some());
    assert!(client.head("r/manifest.json").unwrap().is_some());
}

#[test]
fn a_backup_removed_by_another_run_while_written_is_never_published() {
    let server = S3Server::start(BUCKET);
    let repo = repo(&server, "s3://backups/live");
    let stage = repo
        .begin(&SafeName::new("2026-12-07_130000").unwrap())
        .unwrap();
    write(&*stage, "qdrant/a.snapshot", b"aaaa");
    write(&*stage, "manifest.json", MANIFEST.as_bytes());
    // Another run takes it for a leftover and removes it.
    let listed = repo.list().unwrap();
    assert_eq!(listed.len(), 1);
    repo.remove(&listed[0]).unwrap();
    let refused = stage.commit().unwrap_err();
    assert!(refused.to_string().contains("leftover"), "{refused}");
    assert!(repo.list().unwrap().is_empty());
    assert!(
        server.objects(BUCKET).is_empty(),
        "{:?}",
        server.objects(BUCKET)
    );

    // A file missing at publish time (deleted behind the run's back) stops it too.
    let stage = repo
        .begin(&SafeName::new("2026-12-07_140000").unwrap())
        .unwrap();
    write(&*stage, "qdrant/b.snapshot", b"bbbb");
    write(&*stage, "manifest.json", MANIFEST.as_bytes());
    std::fs::remove_file(server.object_path(BUCKET, "live/2026-12-07_140000/qdrant/b.snapshot"))
        .unwrap();
    let refused = stage.commit().unwrap_err();
    assert!(refused.to_string().contains("b.snapshot"), "{refused}");
    assert!(repo.list().unwrap().iter().all(|f| f.kind == Kind::Staging));
}
