//! The MQTT subscriber and publisher against a real mosquitto: acknowledgements, redelivery
//! of what was not acknowledged, backpressure without loss, and reconnecting after the broker
//! was killed.

use std::time::Duration;

use sluice_brokers::Mosquitto;
use sluice_connectors::mqtt::{MqttMessage, MqttPublisher, MqttSettings, MqttSubscriber};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(15);

fn settings(url: &str, id: &str) -> MqttSettings {
    let mut settings = MqttSettings::new(url);
    settings.client_id = id.to_string();
    settings
}

async fn connected(check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not connected within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn next(rx: &mut mpsc::Receiver<MqttMessage>) -> MqttMessage {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a message within the timeout")
        .expect("the subscriber is running")
}

/// A subscriber on `filter`, connected and subscribed (checked by a message round trip).
async fn subscriber(
    url: &str,
    id: &str,
    filter: &str,
    capacity: usize,
    publisher: &MqttPublisher,
) -> (MqttSubscriber, mpsc::Receiver<MqttMessage>) {
    let (tx, mut rx) = mpsc::channel(capacity);
    let sub = MqttSubscriber::start(&settings(url, id), tx).expect("subscriber");
    sub.subscribe(filter).await;
    connected(|| sub.is_connected()).await;
    // The SUBACK is not awaited: publish until a probe arrives.
    let probe_topic = filter.replace('#', "probe");
    loop {
        publisher
            .publish(probe_topic.clone(), b"probe".to_vec(), 1, false, WAIT)
            .await
            .expect("probe published");
        if let Ok(Some(message)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await
        {
            if let Some(ack) = message.ack {
                ack.ack();
            }
            while let Ok(extra) = rx.try_recv() {
                if let Some(ack) = extra.ack {
                    ack.ack();
                }
            }
            return (sub, rx);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_messages_come_back_to_the_next_session_and_acknowledged_ones_do_not() {
    let broker = Mosquitto::start().expect("mosquitto");
    let url = broker.url();
    let publisher = MqttPublisher::start(&settings(&url, "redeliver-pub")).expect("publisher");
    let (sub, mut rx) = subscriber(&url, "redeliver", "r/#", 64, &publisher).await;

    for i in 0..4u8 {
        publisher
            .publish(format!("r/{i}"), vec![i], 1, false, WAIT)
            .await
            .expect("published");
    }
    let mut held = Vec::new();
    for _ in 0..4 {
        let message = next(&mut rx).await;
        let ack = message.ack.expect("QoS 1 has an ack");
        if message.payload[0] % 2 == 0 {
            ack.ack();
        } else {
            held.push(ack); // settled later than the session lasts
        }
    }
    sub.close().await;
    drop(held);

    // Same client id, persistent session: only 1 and 3 come back.
    let (tx, mut rx) = mpsc::channel(64);
    let again = MqttSubscriber::start(&settings(&url, "redeliver"), tx).expect("subscriber");
    again.subscribe("r/#").await;
    let mut redelivered: Vec<u8> = Vec::new();
    for _ in 0..2 {
        let message = next(&mut rx).await;
        redelivered.push(message.payload[0]);
        message.ack.expect("ack").ack();
    }
    redelivered.sort_unstable();
    assert_eq!(redelivered, vec![1, 3]);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), rx.recv())
            .await
            .is_err(),
        "an acknowledged message was delivered again"
    );
    again.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pipeline_slows_the_subscriber_and_loses_nothing() {
    let broker = Mosquitto::start().expect("mosquitto");
    let url = broker.url();
    let publisher = MqttPublisher::start(&settings(&url, "slow-pub")).expect("publisher");
    let (sub, mut rx) = subscriber(&url, "slow", "s/#", 1, &publisher).await;

    let n = 300u32;
    let sends: Vec<_> = (0..n)
        .map(|i| {
            let publisher = publisher.clone();
            tokio::spawn(async move {
                publisher
                    .publish(format!("s/{i}"), i.to_be_bytes().to_vec(), 1, false, WAIT)
                    .await
            })
        })
        .collect();
    for send in sends {
        send.await.expect("task").expect("published");
    }
    // Nothing was read while the channel (capacity 1) was full; now take everything slowly.
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < n as usize {
        let message = next(&mut rx).await;
        let mut id = [0u8; 4];
        id.copy_from_slice(&message.payload[..4]);
        seen.insert(u32::from_be_bytes(id));
        message.ack.expect("ack").ack();
        if seen.len() % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(seen.len(), n as usize);
    sub.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_connections_come_back_after_the_broker_is_killed() {
    let mut broker = Mosquitto::start().expect("mosquitto");
    let url = broker.url();
    let publisher = MqttPublisher::start(&settings(&url, "restart-pub")).expect("publisher");
    let (sub, mut rx) = subscriber(&url, "restart", "k/#", 64, &publisher).await;
    publisher
        .publish("k/before".into(), b"1".to_vec(), 1, false, WAIT)
        .await
        .expect("published");
    next(&mut rx).await.ack.expect("ack").ack();

    broker.restart().expect("broker restarts");
    // The publisher holds the publish until it has reconnected and the broker acknowledged it;
    // the subscriber reconnects and subscribes again (the broker lost its session).
    connected(|| publisher.is_connected() && sub.is_connected()).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let message = loop {
        publisher
            .publish("k/after".into(), b"2".to_vec(), 1, false, WAIT)
            .await
            .expect("published after the restart");
        if let Ok(Some(message)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await
        {
            break message;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing arrived after the restart"
        );
    };
    assert_eq!(message.topic, "k/after");
    message.ack.expect("ack").ack();
    sub.close().await;
    publisher.close().await;
}
