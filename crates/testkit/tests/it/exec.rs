//! Scripted exec over a real WebSocket, in-process and over HTTPS.

use k8s_openapi::api::core::v1::Pod;
use keyhole_testkit::{ExecResponse, FakeCluster, Identity};
use kube::api::{Api, AttachParams};
use tokio::io::AsyncWriteExt as _;

use crate::authz::read_all;
use crate::status;

fn script(cluster: &FakeCluster) {
    cluster.set_exec_handler(|req| match req.command.first().map(String::as_str) {
        Some("cat") => ExecResponse::stdout(req.stdin.clone()),
        Some("fail") => ExecResponse::failure(3, "boom\n"),
        _ => ExecResponse {
            stdout: format!("{}:{}", req.container, req.command.join(" ")).into_bytes(),
            stderr: b"warn\n".to_vec(),
            exit_code: 0,
        },
    });
}

async fn run(
    pods: &Api<Pod>,
    cmd: &[&str],
    ap: &AttachParams,
    stdin: Option<&[u8]>,
) -> (
    String,
    String,
    Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>,
) {
    let mut p = pods.exec("web-0", cmd.iter().copied(), ap).await.unwrap();
    if let Some(input) = stdin {
        let mut w = p.stdin().unwrap();
        w.write_all(input).await.unwrap();
        w.shutdown().await.unwrap();
        drop(w);
    }
    let out = p.stdout().unwrap();
    let err = p.stderr().unwrap();
    let st = p.take_status().unwrap();
    let (o, e) = tokio::join!(read_all(out), read_all(err));
    (o, e, st.await)
}

#[tokio::test]
async fn exec_streams_stdin_stdout_stderr_and_the_exit_status() {
    let cluster = FakeCluster::new();
    cluster
        .add_running_pod("prod", "web-0", &["app", "side"])
        .unwrap();
    script(&cluster);
    let pods: Api<Pod> = Api::namespaced(cluster.client_admin(), "prod");
    let ap = || AttachParams::default().container("app");

    let (o, e, s) = run(&pods, &["sh", "-c", "id"], &ap(), None).await;
    assert_eq!((o.as_str(), e.as_str()), ("app:sh -c id", "warn\n"));
    assert_eq!(s.unwrap().status.as_deref(), Some("Success"));

    let (o, _, _) = run(&pods, &["cat"], &ap().stdin(true), Some(b"script body\n")).await;
    assert_eq!(o, "script body\n");

    let (_, e, s) = run(&pods, &["fail"], &ap(), None).await;
    assert_eq!(e, "boom\n");
    let s = s.unwrap();
    assert_eq!(s.reason.as_deref(), Some("NonZeroExitCode"));
    assert_eq!(
        s.details.unwrap().causes.unwrap()[0].message.as_deref(),
        Some("3")
    );

    let execs = cluster.execs();
    assert_eq!(execs.len(), 3);
    assert_eq!(execs[1].stdin, b"script body\n");
    assert_eq!(execs[0].identity, Identity::Admin);

    // Refusals the real server gives.
    let e = status(
        pods.exec("web-0", ["id"], &AttachParams::default())
            .await
            .map(|_| ()),
    );
    assert!(
        e.message.starts_with("a container name must be specified"),
        "{}",
        e.message
    );
    let e = status(
        pods.exec("web-0", ["id"], &AttachParams::default().container("nope"))
            .await
            .map(|_| ()),
    );
    assert_eq!(e.code, 400);
    let e = status(pods.exec("ghost", ["id"], &ap()).await.map(|_| ()));
    assert_eq!(e.code, 404);
    cluster
        .set_container_terminated("prod", "web-0", "side", 0)
        .unwrap();
    let e = status(
        pods.exec("web-0", ["id"], &AttachParams::default().container("side"))
            .await
            .map(|_| ()),
    );
    assert!(e.message.contains("container not found"), "{}", e.message);
    let calls = cluster.calls();
    let exec_call = calls.iter().find(|c| c.path.ends_with("/exec")).unwrap();
    assert_eq!(
        (exec_call.verb.as_str(), exec_call.status),
        ("get", Some(101))
    );
    assert!(
        exec_call.query.contains("command=sh"),
        "{}",
        exec_call.query
    );
}

#[tokio::test]
async fn exec_without_a_handler_fails_clearly() {
    let cluster = FakeCluster::new();
    cluster.add_running_pod("prod", "web-0", &["app"]).unwrap();
    let pods: Api<Pod> = Api::namespaced(cluster.client_admin(), "prod");
    let (_, e, s) = run(&pods, &["id"], &AttachParams::default(), None).await;
    assert!(e.contains("no exec handler registered"), "{e}");
    assert_eq!(s.unwrap().status.as_deref(), Some("Failure"));
}

#[tokio::test]
async fn exec_into_an_ephemeral_container_over_https() {
    let cluster = FakeCluster::new();
    cluster.add_running_pod("prod", "web-0", &["app"]).unwrap();
    script(&cluster);
    let server = cluster.serve_https().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(server.client_admin().unwrap(), "prod");
    pods.patch_ephemeral_containers(
        "web-0",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Strategic(serde_json::json!({"spec": {"ephemeralContainers": [{"name": "dbg", "image": "busybox:1.36", "targetContainerName": "app"}]}})),
    )
    .await
    .unwrap();
    let (o, _, s) = run(
        &pods,
        &["cat"],
        &AttachParams::default().container("dbg").stdin(true),
        Some(b"over tls"),
    )
    .await;
    assert_eq!(o, "over tls");
    assert_eq!(s.unwrap().status.as_deref(), Some("Success"));
}

#[tokio::test]
async fn an_exec_cut_mid_stream_delivers_part_of_stdout_and_no_status() {
    let cluster = FakeCluster::new();
    cluster.add_running_pod("prod", "web-0", &["app"]).unwrap();
    cluster.set_exec_handler(|_| ExecResponse::stdout("0123456789".repeat(100)));
    let pods: Api<Pod> = Api::namespaced(cluster.client_admin(), "prod");
    cluster.faults().drop_exec_after(15);
    let (o, _, s) = run(&pods, &["id"], &AttachParams::default(), None).await;
    assert_eq!((o.as_str(), s), ("012345678901234", None));
    // One session only.
    let (o, _, s) = run(&pods, &["id"], &AttachParams::default(), None).await;
    assert_eq!(o.len(), 1000);
    assert_eq!(s.unwrap().status.as_deref(), Some("Success"));
}
