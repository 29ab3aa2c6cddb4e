//! aimem's S3 client against a real S3 server (s3s-fs): every call it makes, and the errors
//! a user meets (bad keys, no bucket, nobody listening), each with what to do.

use std::io::Read;
use std::time::{Duration, Instant};

use aimem::s3::{S3Client, S3Config, S3Error};

use super::s3_server::S3Server;

const BUCKET: &str = "backups";

fn client_with(server: &S3Server, vars: &[(&str, String)]) -> S3Client {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let lookup = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let config = S3Config::from_env(&lookup, BUCKET).unwrap();
    assert!(
        config.path_style,
        "{} is addressed path-style",
        server.endpoint()
    );
    S3Client::new(
        &config,
        BUCKET,
        Duration::from_secs(2),
        Duration::from_secs(10),
    )
    .unwrap()
}

fn client(server: &S3Server) -> S3Client {
    client_with(server, &server.env())
}

#[test]
fn objects_are_written_listed_read_and_deleted() {
    let server = S3Server::start(BUCKET);
    let s3 = client(&server);
    s3.put("root/b1/manifest.json", b"{}", false).unwrap();
    s3.put("root/b1/data/one file.bin", &[7u8; 1000], false)
        .unwrap();
    s3.put("root/b2/x", b"x", false).unwrap();
    s3.put("rootless", b"y", false).unwrap();

    let folders = s3.list("root/", true).unwrap();
    assert_eq!(folders.prefixes, ["root/b1/", "root/b2/"]);
    assert!(folders.objects.is_empty());
    let all = s3.list("root/b1/", false).unwrap();
    let mut keys: Vec<(&str, u64)> = all
        .objects
        .iter()
        .map(|o| (o.key.as_str(), o.size))
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            ("root/b1/data/one file.bin", 1000),
            ("root/b1/manifest.json", 2)
        ]
    );
    assert!(all.objects.iter().all(|o| o.modified.is_some()));

    let mut whole = Vec::new();
    let download = s3.get("root/b1/data/one file.bin", 0).unwrap();
    assert_eq!(download.len, 1000);
    download.reader.take(2000).read_to_end(&mut whole).unwrap();
    assert_eq!(whole, vec![7u8; 1000]);
    let tail = s3.get("root/b1/data/one file.bin", 990).unwrap();
    assert_eq!(tail.len, 10, "a ranged read gives the rest");
    assert_eq!(s3.get_small("root/b1/manifest.json", 10).unwrap(), b"{}");
    assert!(matches!(
        s3.get_small("root/b1/data/one file.bin", 10),
        Err(S3Error::Invalid { .. })
    ));

    let head = s3.head("root/b2/x").unwrap().unwrap();
    assert_eq!(head.size, 1);
    assert!(s3.head("root/b2/nothing").unwrap().is_none());
    assert!(matches!(
        s3.get("root/nothing", 0),
        Err(S3Error::NotFound { .. })
    ));

    s3.delete("root/b2/x").unwrap();
    s3.delete("root/b2/x").unwrap();
    assert!(s3.head("root/b2/x").unwrap().is_none());
}

#[test]
fn a_multipart_upload_is_put_together_in_order_or_aborted() {
    let server = S3Server::start(BUCKET);
    let s3 = client(&server);
    let upload = s3.begin_upload("big").unwrap();
    // Every part but the last must be at least 5 MiB.
    let first = vec![1u8; 5 * 1024 * 1024];
    let second = vec![2u8; 100];
    let e2 = s3.upload_part("big", &upload, 2, &second).unwrap();
    let e1 = s3.upload_part("big", &upload, 1, &first).unwrap();
    s3.complete_upload("big", &upload, &[e1, e2]).unwrap();
    let stored = std::fs::read(server.object_path(BUCKET, "big")).unwrap();
    assert_eq!(stored.len(), first.len() + second.len());
    assert_eq!(&stored[first.len()..], &second[..]);

    let dropped = s3.begin_upload("dropped").unwrap();
    s3.upload_part("dropped", &dropped, 1, b"abc").unwrap();
    assert_eq!(server.pending_parts(), 1);
    s3.abort_upload("dropped", &dropped).unwrap();
    assert!(s3.head("dropped").unwrap().is_none());
    assert_eq!(server.objects(BUCKET), ["big"]);
    assert_eq!(
        server.pending_parts(),
        0,
        "nothing of the aborted upload is left"
    );
}

#[test]
fn wrong_keys_a_missing_bucket_and_a_dead_endpoint_say_what_to_do() {
    let server = S3Server::start(BUCKET);
    let mut wrong = server.env();
    wrong[1].1 = "not-the-secret-key-at-all".to_string();
    let refused = client_with(&server, &wrong).list("", true).unwrap_err();
    assert!(
        matches!(refused, S3Error::Credentials { .. }),
        "{refused:?}"
    );
    let message = refused.to_string();
    assert!(message.contains("AWS_SECRET_ACCESS_KEY"), "{message}");
    assert!(!message.contains("not-the-secret-key-at-all"), "{message}");

    let mut anonymous = server.env();
    anonymous.retain(|(k, _)| !k.starts_with("AWS_ACCESS") && !k.starts_with("AWS_SECRET"));
    let denied = client_with(&server, &anonymous).list("", true).unwrap_err();
    assert!(denied.is_access_problem(), "{denied:?}");

    std::fs::remove_dir(server.bucket_dir(BUCKET)).unwrap();
    let missing = client(&server).list("", true).unwrap_err();
    assert!(matches!(missing, S3Error::NoBucket { .. }), "{missing:?}");
    assert!(missing.to_string().contains("`backups`"), "{missing}");

    let mut dead = server.env();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    dead[2].1 = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let unreachable = client_with(&server, &dead).list("", true).unwrap_err();
    assert!(
        matches!(unreachable, S3Error::Unreachable { .. }),
        "{unreachable:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a dead endpoint fails at once"
    );
}

#[test]
fn a_create_only_write_never_replaces_an_object() {
    let server = S3Server::start(BUCKET);
    let s3 = client(&server);
    s3.put("m", b"first", true).unwrap();
    let second = s3.put("m", b"second", true).unwrap_err();
    assert!(matches!(second, S3Error::Exists { .. }), "{second:?}");
    assert_eq!(s3.get_small("m", 100).unwrap(), b"first");
    s3.put("m", b"third", false).unwrap();
    assert_eq!(s3.get_small("m", 100).unwrap(), b"third");
}

#[test]
fn a_streamed_object_is_uploaded_in_parts_and_read_back_at_any_offset() {
    use aimem::s3::transfer::{MIN_PART, ObjectReader, ObjectWriter};
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    let server = S3Server::start(BUCKET);
    let s3 = client(&server);
    let started = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&started);
    let on_start = Arc::new(move |key: &str, id: &str| {
        record
            .lock()
            .unwrap()
            .push((key.to_string(), id.to_string()));
        Ok(())
    });
    let bytes: Vec<u8> = (0..2 * MIN_PART + 12_345)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let mut writer = ObjectWriter::new(s3.clone(), "big/one".into(), MIN_PART, on_start.clone());
    for chunk in bytes.chunks(100_000) {
        writer.write_all(chunk).unwrap();
    }
    writer.finish().unwrap();
    assert_eq!(
        started.lock().unwrap().len(),
        1,
        "one multipart upload, journaled"
    );
    assert_eq!(
        std::fs::read(server.object_path(BUCKET, "big/one")).unwrap(),
        bytes
    );
    assert_eq!(server.pending_parts(), 0);

    let small = ObjectWriter::new(s3.clone(), "small".into(), MIN_PART, on_start.clone());
    small.finish().unwrap();
    assert_eq!(s3.head("small").unwrap().unwrap().size, 0);
    assert_eq!(
        started.lock().unwrap().len(),
        1,
        "a small object is one PUT"
    );

    let reader = ObjectReader::new(s3.clone(), "big/one".into(), bytes.len() as u64);
    for offset in [0, 17, MIN_PART as u64 - 3, bytes.len() as u64 - 10, 5, 6] {
        let mut buf = [0u8; 64];
        let mut got = 0;
        while got < buf.len() {
            let n = reader
                .read_at(&mut buf[got..], offset + got as u64)
                .unwrap();
            if n == 0 {
                break;
            }
            got += n;
        }
        let end = (offset as usize + 64).min(bytes.len());
        assert_eq!(&buf[..got], &bytes[offset as usize..end], "at {offset}");
    }
    assert_eq!(
        reader.read_at(&mut [0u8; 8], bytes.len() as u64).unwrap(),
        0
    );

    // A writer dropped half way (a failure, a signal) leaves no object and no parts.
    let mut dropped = ObjectWriter::new(s3.clone(), "dropped".into(), MIN_PART, on_start);
    dropped.write_all(&bytes[..MIN_PART + 10]).unwrap();
    assert_eq!(started.lock().unwrap().len(), 2);
    drop(dropped);
    assert!(s3.head("dropped").unwrap().is_none());
    assert_eq!(server.pending_parts(), 0, "the dropped upload was aborted");
}

/// More files streamed at once than the part memory holds parts: each waits its turn for
/// room, none waits forever, and every object arrives whole.
#[test]
fn many_objects_streamed_at_once_share_the_part_memory_and_all_arrive() {
    use aimem::s3::transfer::{MIN_PART, ObjectWriter};
    use std::io::Write;
    use std::sync::Arc;

    let server = S3Server::start(BUCKET);
    let s3 = client(&server);
    let on_start: aimem::s3::transfer::OnUploadStart = Arc::new(|_: &str, _: &str| Ok(()));
    let writers: Vec<_> = (0..6u8)
        .map(|n| {
            let s3 = s3.clone();
            let on_start = Arc::clone(&on_start);
            std::thread::spawn(move || {
                let bytes: Vec<u8> = (0..2 * MIN_PART + 1000)
                    .map(|i| (i as u8).wrapping_mul(n + 1))
                    .collect();
                let key = format!("many/{n}");
                let mut writer = ObjectWriter::new(s3, key.clone(), MIN_PART, on_start);
                for chunk in bytes.chunks(64 * 1024) {
                    writer.write_all(chunk).unwrap();
                }
                writer.finish().unwrap();
                (key, bytes)
            })
        })
        .collect();
    for writer in writers {
        let (key, bytes) = writer.join().unwrap();
        assert!(
            std::fs::read(server.object_path(BUCKET, &key)).unwrap() == bytes,
            "{key}"
        );
    }
    assert_eq!(server.pending_parts(), 0);
}

/// A server that answers, then stops sending half-way through the body and keeps the
/// connection open: the read fails once the body has not moved for the request timeout,
/// instead of hanging the run.
#[test]
fn a_body_that_stops_moving_fails_within_the_request_timeout() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut head = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut head);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
            let _ = stream.flush();
            // Kept open, silent.
            held.push(stream);
        }
    });
    let s3 = scripted_client(port, Duration::from_secs(1));
    let started = Instant::now();
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let download = s3.get("stalled", 0).unwrap();
        let mut body = Vec::new();
        let read = download.reader.take(download.len).read_to_end(&mut body);
        let _ = done.send(read.map_err(|e| e.to_string()));
    });
    // Without a bound on a silent body this would wait for ever: fail instead of hanging.
    let read = outcome
        .recv_timeout(Duration::from_secs(20))
        .expect("the read gives up on a silent body");
    assert!(read.is_err(), "{read:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "gave up after {:?}",
        started.elapsed()
    );
}

/// A scripted S3 endpoint for the answers a real server gives only under load or with a bad
/// clock: each connection gets the next answer of `answers` (the last one repeats), and the
/// request heads are kept.
fn scripted_endpoint(answers: Vec<String>) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let heads = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0u8; length];
            let _ = std::io::Read::read_exact(&mut reader, &mut body);
            heads.lock().unwrap().push(head);
            let answer = &answers[n.min(answers.len() - 1)];
            let mut stream = reader.into_inner();
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (port, seen)
}

/// A client of the endpoint on `port` (path-style, made-up keys), waiting `request` for an
/// answer.
fn scripted_client(port: u16, request: Duration) -> S3Client {
    let vars = [
        ("AWS_ACCESS_KEY_ID", "AKSCRIPT".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "secret-of-the-script".to_string()),
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        ("AWS_REGION", "us-east-1".to_string()),
    ];
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    let config = S3Config::from_env(&lookup, BUCKET).unwrap();
    S3Client::new(&config, BUCKET, Duration::from_secs(2), request).unwrap()
}

fn s3_error_answer(status: &str, code: &str) -> String {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>scripted</Message></Error>"
    );
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn throttling_is_waited_out_with_growing_pauses_and_a_bad_clock_says_so() {
    let slow_down = s3_error_answer("503 Slow Down", "SlowDown");
    let ok = "HTTP/1.1 200 OK\r\nETag: \"abc\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        .to_string();
    let (port, seen) = scripted_endpoint(vec![slow_down.clone(), slow_down, ok]);
    let started = Instant::now();
    scripted_client(port, Duration::from_secs(5))
        .put("k", b"bytes", false)
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 3, "tried until it went through");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "it paused between tries ({:?})",
        started.elapsed()
    );

    let (port, seen) = scripted_endpoint(vec![s3_error_answer(
        "403 Forbidden",
        "RequestTimeTooSkewed",
    )]);
    let error = scripted_client(port, Duration::from_secs(5))
        .put("k", b"bytes", false)
        .unwrap_err();
    assert!(matches!(error, S3Error::ClockSkew { .. }), "{error:?}");
    assert!(error.to_string().contains("set the clock right"), "{error}");
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "a bad clock is not tried again"
    );
}

#[test]
fn a_read_of_a_version_fails_once_the_object_is_another() {
    let server = S3Server::start(BUCKET);
    let s3 = client(&server);
    s3.put("root/b1/points.parquet", &[1u8; 5000], false)
        .unwrap();
    // The version as the listing names it (s3s-fs lists none) or as a read is served.
    let listed = s3.list("root/b1/", false).unwrap();
    let served = s3
        .get_version("root/b1/points.parquet", 0, None)
        .unwrap()
        .etag;
    let etag = listed.objects[0].etag.clone().or(served);
    assert!(etag.is_some(), "the server names versions");
    // That version reads, from any offset.
    let mut tail = Vec::new();
    s3.get_version("root/b1/points.parquet", 4000, etag.as_deref())
        .unwrap()
        .reader
        .read_to_end(&mut tail)
        .unwrap();
    assert_eq!(tail, [1u8; 1000]);
    // Replaced: the old version is no longer served, in whole or in part.
    s3.put("root/b1/points.parquet", &[2u8; 5000], false)
        .unwrap();
    for start in [0, 4000] {
        match s3.get_version("root/b1/points.parquet", start, etag.as_deref()) {
            Err(S3Error::Changed { .. }) => {}
            other => panic!("{:?}", other.map(|d| d.len)),
        }
    }
}
