//! Typed lookups against an in-process responder on 127.0.0.1 (never the
//! system resolver).

mod responder;

use postern_dns::{
    ClientName, LocalHosts, Lookup, MailHost, NameStatus, Options, Resolver, is_null_mx,
};
use responder::{Responder, Zone};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn zone() -> Zone {
    let mut z = Zone::default();
    z.mx("example.test", 20, "mx2.example.test")
        .mx("example.test", 10, "mx1.example.test")
        .mx("example.test", 20, "mx3.example.test")
        .a("mx1.example.test", "192.0.2.1")
        .a("host.example.test", "192.0.2.10")
        .a("host.example.test", "2001:db8::10")
        .ptr("192.0.2.10", "host.example.test")
        .ptr("2001:db8::10", "host.example.test")
        .ptr("192.0.2.20", "forged.example.test")
        .a("forged.example.test", "192.0.2.99")
        .ptr("192.0.2.21", "gone.example.test")
        .ptr("192.0.2.40", "slow.servfail.test")
        .ptr("192.0.2.50", "1.2.3.4")
        .mx("nullmx.test", 0, ".")
        .ptr("127.0.0.8", "client.example.test")
        .a("client.example.test", "127.0.0.8")
        .a("v6only.test", "2001:db8::99")
        .txt("txt.test", &["v=spf1 ", "-all"])
        .txt("txt.test", &["second"])
        .a("2.0.0.127.zen.test", "127.0.0.2")
        .a("2.0.0.127.zen.test", "127.0.0.10")
        .txt(
            "2.0.0.127.zen.test",
            &["Listed, see https://zen.test/q?127.0.0.2"],
        )
        .a("3.0.0.127.zen.test", "127.0.0.3")
        .a(
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.test",
            "127.0.0.2",
        )
        .a("spam.example.test.dbl.test", "127.0.1.2")
        .mx("dom.servfail.test", 10, "x")
        .txt("big.test", &[&"a".repeat(250), &"b".repeat(250)])
        .txt("big.test", &[&"c".repeat(250), &"d".repeat(250)]);
    z
}

fn hosts() -> Arc<LocalHosts> {
    Arc::new(LocalHosts::parse(
        "127.0.0.1 localhost\n::1 localhost\n127.0.1.1 box.local box\n",
    ))
}

async fn setup() -> (Responder, Resolver) {
    let r = responder::start(zone()).await;
    let opts = Options {
        timeout: Duration::from_millis(400),
        attempts: 1,
    };
    let res = Resolver::with_hosts(&[r.addr], opts, hosts()).unwrap();
    (r, res)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn mx_sorted_and_null() {
    let (_r, res) = setup().await;
    assert_eq!(
        res.mx("example.test").await,
        Lookup::Found(vec![
            (10, "mx1.example.test".into()),
            (20, "mx2.example.test".into()),
            (20, "mx3.example.test".into()),
        ])
    );
    // Case and a trailing dot do not matter.
    assert!(res.mx("Example.TEST.").await.is_found());
    let null = res.mx("nullmx.test").await;
    assert_eq!(null, Lookup::Found(vec![(0, ".".into())]));
    assert!(is_null_mx(null.found().unwrap()));
    assert_eq!(res.mx("nx.test").await, Lookup::NotFound); // NXDOMAIN
    assert_eq!(res.mx("host.example.test").await, Lookup::NotFound); // NODATA
    assert!(
        matches!(res.mx("dom.servfail.test").await, Lookup::TempFail(why) if why.contains("SERVFAIL") || why.contains("Server Failure") || why.contains("ServFail"))
    );
}

#[tokio::test]
async fn addresses() {
    let (r, res) = setup().await;
    assert_eq!(
        res.a_aaaa("host.example.test").await,
        Lookup::Found(vec![ip("192.0.2.10"), ip("2001:db8::10")])
    );
    assert_eq!(
        res.a_aaaa("v6only.test").await,
        Lookup::Found(vec![ip("2001:db8::99")])
    );
    assert_eq!(res.a_aaaa("nx.test").await, Lookup::NotFound);
    assert_eq!(res.a_aaaa("example.test").await, Lookup::NotFound);
    assert!(res.a_aaaa("a.servfail.test").await.is_tempfail());
    // Invalid names are "not found" without a query.
    let before = r.queries.load(Ordering::SeqCst);
    assert_eq!(res.a_aaaa("bad..name").await, Lookup::NotFound);
    assert_eq!(res.a_aaaa("").await, Lookup::NotFound);
    assert_eq!(r.queries.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn loopback_names_from_hosts_without_dns() {
    let (r, res) = setup().await;
    assert_eq!(
        res.a_aaaa("localhost").await,
        Lookup::Found(vec![ip("127.0.0.1"), ip("::1")])
    );
    assert_eq!(
        res.a_aaaa("BOX.local.").await,
        Lookup::Found(vec![ip("127.0.1.1")])
    );
    assert_eq!(
        res.ptr(ip("127.0.0.1")).await,
        Lookup::Found(vec!["localhost".into()])
    );
    assert_eq!(
        res.client_name(ip("127.0.0.1")).await,
        ClientName {
            name: "localhost".into(),
            name_status: NameStatus::Ok,
            reverse_name: "localhost".into(),
            reverse_status: NameStatus::Ok,
            warning: None,
        }
    );
    assert_eq!(res.host_exists("localhost").await, Lookup::Found(()));
    assert_eq!(
        r.queries.load(Ordering::SeqCst),
        0,
        "no DNS query for loopback names"
    );
    // A loopback address /etc/hosts does not list has no name, DNS or not.
    assert_eq!(res.ptr(ip("127.0.0.8")).await, Lookup::NotFound);
    assert_eq!(
        res.forward_confirmed_name(ip("127.0.0.8")).await,
        ("unknown".into(), false)
    );
    assert_eq!(
        r.queries.load(Ordering::SeqCst),
        0,
        "no DNS query for loopback addresses"
    );
}

#[tokio::test]
async fn txt_records() {
    let (_r, res) = setup().await;
    assert_eq!(
        res.txt("txt.test").await,
        Lookup::Found(vec!["v=spf1 -all".into(), "second".into()])
    );
    assert_eq!(res.txt("nx.test").await, Lookup::NotFound);
}

#[tokio::test]
async fn truncated_udp_retries_over_tcp() {
    let (r, res) = setup().await;
    let t = res.txt("big.test").await;
    let Lookup::Found(v) = t else { panic!("{t:?}") };
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].len(), 500);
    assert!(r.tcp_queries.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn ptr_and_client_names() {
    let (_r, res) = setup().await;
    assert_eq!(
        res.ptr(ip("192.0.2.10")).await,
        Lookup::Found(vec!["host.example.test".into()])
    );
    assert_eq!(
        res.forward_confirmed_name(ip("192.0.2.10")).await,
        ("host.example.test".into(), true)
    );
    assert_eq!(
        res.forward_confirmed_name(ip("::ffff:192.0.2.10")).await,
        ("host.example.test".into(), true)
    );
    assert_eq!(
        res.forward_confirmed_name(ip("2001:db8::10")).await,
        ("host.example.test".into(), true)
    );

    let forged = res.client_name(ip("192.0.2.20")).await;
    assert_eq!(forged.name, "unknown");
    assert_eq!(forged.name_status, NameStatus::Forged);
    assert_eq!(forged.reverse_name, "forged.example.test");
    assert_eq!(forged.reverse_status, NameStatus::Ok);
    assert_eq!(
        forged.warning.as_deref(),
        Some("hostname forged.example.test does not resolve to address 192.0.2.20")
    );

    let gone = res.client_name(ip("192.0.2.21")).await;
    assert_eq!(
        (gone.name.as_str(), gone.name_status),
        ("unknown", NameStatus::Forged)
    );
    assert_eq!(gone.reverse_name, "gone.example.test");

    let none = res.client_name(ip("192.0.2.30")).await;
    assert_eq!(
        (
            none.name.as_str(),
            none.name_status,
            none.reverse_name.as_str(),
            none.reverse_status
        ),
        (
            "unknown",
            NameStatus::NotFound,
            "unknown",
            NameStatus::NotFound
        )
    );

    let temp = res.client_name(ip("192.0.2.40")).await;
    assert_eq!(temp.name_status, NameStatus::TempFail);
    assert_eq!(temp.reverse_name, "slow.servfail.test");

    let numeric = res.client_name(ip("192.0.2.50")).await;
    assert_eq!(numeric.name_status, NameStatus::NotFound);
    assert_eq!(numeric.reverse_name, "unknown");
}

#[tokio::test]
async fn mail_and_helo_hosts() {
    let (_r, res) = setup().await;
    assert_eq!(
        res.mail_host("example.test").await,
        Lookup::Found(MailHost::Mx)
    );
    assert_eq!(
        res.mail_host("host.example.test").await,
        Lookup::Found(MailHost::Address)
    );
    assert_eq!(
        res.mail_host("v6only.test").await,
        Lookup::Found(MailHost::Address)
    );
    assert_eq!(
        res.mail_host("nullmx.test").await,
        Lookup::Found(MailHost::NullMx)
    );
    assert_eq!(res.mail_host("nx.test").await, Lookup::NotFound);
    assert!(res.mail_host("x.servfail.test").await.is_tempfail());
    assert_eq!(res.host_exists("nullmx.test").await, Lookup::Found(()));
    assert_eq!(
        res.host_exists("host.example.test").await,
        Lookup::Found(())
    );
    assert_eq!(res.host_exists("nx.test").await, Lookup::NotFound);
}

#[tokio::test]
async fn dnsbl() {
    let (_r, res) = setup().await;
    let hit = res.rbl_lookup(ip("127.0.0.2"), "zen.test").await;
    let Lookup::Found(hit) = hit else {
        panic!("{hit:?}")
    };
    assert_eq!(hit.query, "2.0.0.127.zen.test");
    assert_eq!(
        hit.addrs,
        vec![
            "127.0.0.2".parse::<std::net::Ipv4Addr>().unwrap(),
            "127.0.0.10".parse().unwrap()
        ]
    );
    assert_eq!(
        hit.text.as_deref(),
        Some("Listed, see https://zen.test/q?127.0.0.2")
    );

    assert!(
        res.rbl_lookup(ip("127.0.0.2"), "zen.test=127.0.0.[9..11]")
            .await
            .is_found()
    );
    assert_eq!(
        res.rbl_lookup(ip("127.0.0.2"), "zen.test=127.0.0.4").await,
        Lookup::NotFound
    );
    assert_eq!(
        res.rbl_lookup(ip("127.0.0.1"), "zen.test").await,
        Lookup::NotFound
    );
    let no_txt = res.rbl_lookup(ip("127.0.0.3"), "zen.test").await;
    assert_eq!(no_txt.found().map(|h| h.text.clone()), Some(None));
    assert!(
        res.rbl_lookup(ip("2001:db8::1"), "zen.test")
            .await
            .is_found()
    );
    assert!(
        res.rbl_lookup(ip("127.0.0.2"), "rbl.servfail.test")
            .await
            .is_tempfail()
    );
    assert!(
        res.rbl_lookup(ip("127.0.0.2"), "zen.test=1.2")
            .await
            .is_tempfail()
    );

    assert!(
        res.rhsbl_lookup("user@spam.example.test", "dbl.test")
            .await
            .is_found()
    );
    assert!(
        res.rhsbl_lookup("Spam.Example.Test", "dbl.test=127.0.1.2")
            .await
            .is_found()
    );
    assert_eq!(
        res.rhsbl_lookup("user@ham.example.test", "dbl.test").await,
        Lookup::NotFound
    );
    assert_eq!(
        res.rhsbl_lookup("user@[127.0.0.1]", "dbl.test").await,
        Lookup::NotFound
    );
}

#[tokio::test]
async fn timeout_is_tempfail() {
    let (_r, res) = setup().await;
    let t0 = Instant::now();
    let r = res.mx("x.timeout.test").await;
    assert!(r.is_tempfail(), "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}

#[tokio::test]
async fn from_config() {
    let r = responder::start(zone()).await;
    let text = format!("dns_servers = {}\n", r.addr);
    let cfg = postern_config::Config::new(postern_config::parse_main_cf(&text).unwrap());
    let res = Resolver::from_config(&cfg).unwrap();
    assert_eq!(res.servers(), &[r.addr]);
    assert!(res.mx("example.test").await.is_found());

    let bad = postern_config::Config::new(
        postern_config::parse_main_cf("dns_servers = 127.0.0.1:53, dns.example\n").unwrap(),
    );
    assert!(Resolver::from_config(&bad).is_err());
}

#[tokio::test]
async fn second_server_used_when_first_fails() {
    let r = responder::start(zone()).await;
    // A closed port first: nothing answers there, so the other server wins.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let opts = Options {
        timeout: Duration::from_millis(300),
        attempts: 1,
    };
    let res = Resolver::with_hosts(&[dead_addr, r.addr], opts, hosts()).unwrap();
    let got = res.mx("example.test").await;
    assert!(got.is_found(), "{got:?}");
}

#[tokio::test]
async fn single_families() {
    let (r, res) = setup().await;
    assert_eq!(
        res.a("host.example.test").await,
        Lookup::Found(vec![ip("192.0.2.10")])
    );
    assert_eq!(
        res.aaaa("host.example.test").await,
        Lookup::Found(vec![ip("2001:db8::10")])
    );
    assert_eq!(res.a("v6only.test").await, Lookup::NotFound);
    assert_eq!(
        res.a("localhost").await,
        Lookup::Found(vec![ip("127.0.0.1")])
    );
    assert_eq!(res.aaaa("box.local").await, Lookup::NotFound);
    assert_eq!(r.queries.load(Ordering::SeqCst), 3);
}

#[test]
fn built_outside_a_runtime() {
    // smtpd builds its resolver before its runtime starts.
    let res = Resolver::new(&["127.0.0.1:9".parse().unwrap()], Options::default()).unwrap();
    assert_eq!(res.servers().len(), 1);
}
