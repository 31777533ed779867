//! A broker on another host cut off without a TCP close (a partition), tested with a network
//! namespace joined to this one by a veth pair, never with real hosts: the pipes' ZMTP
//! heartbeats drop the silent broker within BROKER_SILENCE_MS, its unsent requests go to the
//! other broker, and clients that retry once after 3 s get every answer.

mod interop;

use std::process::Command;
use std::time::Duration;

use interop::node::{Settings, LOG_WAIT};
use interop::{wait, Logged, Peer};

/// `ip ARGS`, which must succeed (the test needs root and iproute2; it fails, not skips).
fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("iproute2's `ip` is required");
    assert!(status.success(), "ip {args:?} failed");
}

/// A network namespace with a veth pair to this one: 10.231.0.1 here, 10.231.0.2 there.
struct Host {
    netns: String,
    link: String,
}

impl Host {
    fn new() -> Self {
        let id = std::process::id() % 100_000;
        let (netns, link, peer) = (format!("ezp{id}"), format!("ezh{id}"), format!("ezn{id}"));
        let _ = Command::new("ip").args(["netns", "del", &netns]).status();
        let _ = Command::new("ip").args(["link", "del", &link]).status();
        ip(&["netns", "add", &netns]);
        ip(&["link", "add", &link, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", &netns]);
        ip(&["addr", "add", "10.231.0.1/24", "dev", &link]);
        ip(&["link", "set", &link, "up"]);
        ip(&["netns", "exec", &netns, "ip", "addr", "add", "10.231.0.2/24", "dev", &peer]);
        ip(&["netns", "exec", &netns, "ip", "link", "set", &peer, "up"]);
        ip(&["netns", "exec", &netns, "ip", "link", "set", "lo", "up"]);
        Self { netns, link }
    }

    /// Cuts the link or brings it back: no FIN, no RST, packets simply stop.
    fn link(&self, up: bool) {
        ip(&["link", "set", &self.link, if up { "up" } else { "down" }]);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.link]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.netns]).status();
    }
}

#[test]
fn a_cut_off_brokers_share_goes_to_the_other_broker_and_every_request_is_answered() {
    let host = Host::new();
    let s = Settings::new(&["BIND_ADDRESS=0.0.0.0", "BROKER_SILENCE_MS=2000", "TASK_TIMEOUT_MS=30000"]);
    // The pipes listen on every address so the broker in the namespace reaches them; this
    // test's network is its own, so NULL is fine (--insecure).
    let node = s.start(&["up", "--insecure"]);
    let remote = ["IN_PIPE_HOST=10.231.0.1", "WORKER_PIPE_HOST=10.231.0.1", "BROKER_PIPE_HOST=10.231.0.1"];
    let mut args: Vec<&str> = remote.iter().flat_map(|r| ["--set", r]).collect();
    args.push("broker");
    let second = Logged::spawn(&mut s.ezarch_in(&host.netns, &args));
    second.wait_log("broker attached to", 4, LOG_WAIT);
    let mut worker = s.worker("svc", "10", "300");
    node.wait_log("joined service svc", 1, LOG_WAIT);
    second.wait_log("joined service svc", 1, LOG_WAIT);
    // Four clients, each request retried once after 3 s, as the original client does.
    let in_ep = s.endpoint("IN_PIPE_PORT_A");
    let mut clients: Vec<Peer> =
        (0..4).map(|_| s.py("client", &[&in_ep, "svc", "600", "1", "2", "3000"])).collect();
    std::thread::sleep(Duration::from_secs(2)); // under load, then the cut (scenario pacing)
    host.link(false);
    node.wait_log("heartbeat timed out", 1, LOG_WAIT);
    std::thread::sleep(Duration::from_secs(8)); // 10 s cut off in all
    host.link(true);
    assert!(clients.iter_mut().all(|c| !c.poll_done()), "the load lasted past the cut");
    let mut all: Vec<&mut Peer> = clients.iter_mut().collect();
    wait(&mut all, Duration::from_secs(90));
    worker.kill();
    let (_, second_log) = second.stop();
    let (_, first_log) = node.stop();
    if clients.iter().any(|c| !c.output.as_ref().is_some_and(|(ok, _)| *ok)) {
        eprintln!(
            "== second broker\n{second_log}\n== up\n{}",
            first_log.lines().filter(|l| !l.contains("DEBUG")).collect::<Vec<_>>().join("\n")
        );
    }
    for client in &clients {
        client.ok_line();
    }
}
