//! Starts real mosquitto and nats-server processes and drives them through the probes.

use sluice_brokers::{Mosquitto, MqttProbe, NatsProbe, NatsServer, ProbeError, QoS, free_port};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn accepts_connections(port: u16) -> bool {
    TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
}

#[test]
fn free_port_returns_a_bindable_loopback_port() {
    let port = free_port().expect("free port");
    assert_ne!(port, 0);
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("port is free");
}

#[test]
fn mosquitto_listens_on_its_own_port_until_dropped() {
    let first = Mosquitto::start().expect("start mosquitto");
    let second = Mosquitto::start().expect("start a second mosquitto");
    assert_ne!(first.port(), second.port());
    assert_eq!(first.url(), format!("mqtt://127.0.0.1:{}", first.port()));
    assert!(first.log_path().exists(), "mosquitto writes its log file");

    let port = first.port();
    assert!(accepts_connections(port));
    drop(first);
    assert!(
        !accepts_connections(port),
        "mosquitto still listens after drop"
    );
    assert!(
        accepts_connections(second.port()),
        "dropping one broker leaves the other"
    );
}

#[tokio::test]
async fn mqtt_probe_round_trips_qos0_qos1_and_qos2() {
    let broker = Mosquitto::start().expect("start mosquitto");
    let mut subscriber = MqttProbe::connect(&broker.url())
        .await
        .expect("connect subscriber");
    let publisher = MqttProbe::connect(&broker.url())
        .await
        .expect("connect publisher");
    assert_ne!(subscriber.client_id(), publisher.client_id());

    subscriber
        .subscribe("devices/+/up")
        .await
        .expect("subscribe");
    publisher
        .publish("devices/a/up", b"zero".to_vec(), QoS::AtMostOnce)
        .await
        .expect("publish qos0");
    publisher
        .publish("devices/b/up", b"one".to_vec(), QoS::AtLeastOnce)
        .await
        .expect("publish qos1");
    publisher
        .publish("devices/c/up", b"two".to_vec(), QoS::ExactlyOnce)
        .await
        .expect("publish qos2");
    publisher
        .publish("other/topic", b"ignored".to_vec(), QoS::AtLeastOnce)
        .await
        .expect("publish outside the filter");

    let received = subscriber.collect(3, WAIT).await;
    assert_eq!(
        received,
        vec![
            ("devices/a/up".to_string(), b"zero".to_vec()),
            ("devices/b/up".to_string(), b"one".to_vec()),
            ("devices/c/up".to_string(), b"two".to_vec()),
        ]
    );
    assert_eq!(
        subscriber.next_message(Duration::from_millis(200)).await,
        None
    );
}

#[tokio::test]
async fn mqtt_probe_publish_many_delivers_2000_qos1_messages() {
    const COUNT: usize = 2_000;
    let broker = Mosquitto::start().expect("start mosquitto");
    let mut subscriber = MqttProbe::connect(&broker.url())
        .await
        .expect("connect subscriber");
    let publisher = MqttProbe::connect(&broker.url())
        .await
        .expect("connect publisher");
    subscriber.subscribe("load/#").await.expect("subscribe");

    let messages = (0..COUNT).map(|i| (format!("load/{}", i % 10), i.to_string().into_bytes()));
    let published = publisher
        .publish_many(messages, 500)
        .await
        .expect("all publishes acknowledged");
    assert_eq!(published, COUNT);

    let received = subscriber.collect(COUNT, Duration::from_secs(30)).await;
    assert_eq!(received.len(), COUNT);
    // One publisher at QoS 1: mosquitto keeps its order.
    for (i, (topic, payload)) in received.iter().enumerate() {
        assert_eq!(topic, &format!("load/{}", i % 10));
        assert_eq!(payload, &i.to_string().into_bytes());
    }
}

#[tokio::test]
async fn mqtt_probe_can_receive_its_own_publishes() {
    let broker = Mosquitto::start().expect("start mosquitto");
    let mut probe = MqttProbe::connect(&broker.url()).await.expect("connect");
    probe.subscribe("echo").await.expect("subscribe");
    let published = probe
        .publish_many((0..100).map(|i| ("echo", vec![i as u8])), 1)
        .await
        .expect("publish");
    assert_eq!(published, 100);
    let received = probe.collect(100, WAIT).await;
    let payloads: Vec<Vec<u8>> = received.into_iter().map(|(_, payload)| payload).collect();
    assert_eq!(
        payloads,
        (0..100).map(|i| vec![i as u8]).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn mqtt_probe_rejects_an_invalid_topic_and_keeps_working() {
    let broker = Mosquitto::start().expect("start mosquitto");
    let mut probe = MqttProbe::connect(&broker.url()).await.expect("connect");
    probe.subscribe("t/#").await.expect("subscribe");

    let error = probe
        .publish(
            "t/+",
            b"wildcards are not topics".to_vec(),
            QoS::AtLeastOnce,
        )
        .await
        .expect_err("a wildcard topic is refused");
    assert!(
        matches!(&error, ProbeError::InvalidTopic { topic } if topic == "t/+"),
        "{error}"
    );

    probe
        .publish("t/ok", b"after".to_vec(), QoS::AtLeastOnce)
        .await
        .expect("later publishes are still acknowledged");
    assert_eq!(
        probe.next_message(WAIT).await,
        Some(("t/ok".to_string(), b"after".to_vec()))
    );
}

#[tokio::test]
async fn mqtt_probe_reports_a_refused_connection() {
    let port = free_port().expect("free port");
    let error = MqttProbe::connect(&format!("mqtt://127.0.0.1:{port}"))
        .await
        .expect_err("nothing listens there");
    assert!(matches!(error, ProbeError::MqttConnect { .. }), "{error}");
}

#[tokio::test]
async fn mqtt_probe_fails_pending_work_when_the_broker_stops() {
    let broker = Mosquitto::start().expect("start mosquitto");
    let probe = MqttProbe::connect(&broker.url()).await.expect("connect");
    drop(broker);
    let error = probe
        .publish_many((0..100).map(|i| ("gone", vec![i as u8])), 10)
        .await
        .expect_err("the broker is gone");
    assert!(
        matches!(error, ProbeError::MqttDisconnected { .. }),
        "{error}"
    );
}

#[test]
fn nats_server_listens_with_jetstream_until_dropped() {
    let server = NatsServer::start().expect("start nats-server");
    assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));
    let port = server.port();
    assert!(accepts_connections(port));
    drop(server);
    assert!(
        !accepts_connections(port),
        "nats-server still listens after drop"
    );
}

#[tokio::test]
async fn nats_probe_round_trips_messages() {
    let server = NatsServer::start().expect("start nats-server");
    let mut subscriber = NatsProbe::connect(&server.url())
        .await
        .expect("connect subscriber");
    let publisher = NatsProbe::connect(&server.url())
        .await
        .expect("connect publisher");
    assert!(
        subscriber.client().server_info().jetstream,
        "JetStream is enabled"
    );

    subscriber
        .subscribe("devices.*.up")
        .await
        .expect("subscribe");
    subscriber
        .subscribe("alerts")
        .await
        .expect("subscribe second");
    publisher
        .publish("devices.a.up", b"one".to_vec())
        .await
        .expect("publish");
    publisher
        .publish("other", b"ignored".to_vec())
        .await
        .expect("publish outside the subscriptions");
    publisher
        .publish("devices.b.up", b"two".to_vec())
        .await
        .expect("publish");

    let received = subscriber.collect(2, WAIT).await;
    assert_eq!(
        received,
        vec![
            ("devices.a.up".to_string(), b"one".to_vec()),
            ("devices.b.up".to_string(), b"two".to_vec()),
        ]
    );

    publisher
        .publish("alerts", b"hot".to_vec())
        .await
        .expect("publish alert");
    assert_eq!(
        subscriber.next_message(WAIT).await,
        Some(("alerts".to_string(), b"hot".to_vec()))
    );
    assert_eq!(
        subscriber.next_message(Duration::from_millis(200)).await,
        None
    );
}

#[tokio::test]
async fn nats_probe_delivers_2000_messages() {
    const COUNT: usize = 2_000;
    let server = NatsServer::start().expect("start nats-server");
    let mut probe = NatsProbe::connect(&server.url()).await.expect("connect");
    probe.subscribe("load.>").await.expect("subscribe");
    for i in 0..COUNT {
        probe
            .client()
            .publish(
                format!("load.{}", i % 10),
                i.to_string().into_bytes().into(),
            )
            .await
            .expect("publish");
    }
    probe.flush().await.expect("flush");
    let received = probe.collect(COUNT, Duration::from_secs(30)).await;
    assert_eq!(received.len(), COUNT);
    assert_eq!(received[COUNT - 1].1, (COUNT - 1).to_string().into_bytes());
}
