use super::*;
use std::io::Write;
use std::net::IpAddr;

fn opts() -> OpenOptions {
    OpenOptions::default()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn parent_matches_param() {
    let pdms = "debug_peer_list,fast_flush_domains,mynetworks,permit_mx_backup_networks,qmqpd_authorized_clients,relay_domains,smtpd_access_maps";
    assert!(parent_matches("relay_domains", pdms));
    assert!(!parent_matches("mydestination", pdms));
}

#[test]
fn domain_literals_with_and_without_parent_matching() {
    let with =
        DomainList::new("example.com, !bad.example.org .example.org", true, &opts()).unwrap();
    assert!(with.matches("Example.COM").unwrap());
    assert!(with.matches("mail.example.com").unwrap());
    assert!(!with.matches("notexample.com").unwrap());
    assert!(!with.matches("bad.example.org").unwrap());
    // As in Postfix, a ".domain" literal never matches when parent matching is on.
    assert!(!with.matches("x.example.org").unwrap());
    assert!(!with.matches("example.org").unwrap());

    let without = DomainList::new("example.com .example.org", false, &opts()).unwrap();
    assert!(without.matches("example.com").unwrap());
    assert!(!without.matches("mail.example.com").unwrap());
    assert!(without.matches("a.b.example.org").unwrap());
    assert!(!without.matches("example.org").unwrap());
}

#[test]
fn domain_tables_and_files() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "# local domains\nfile.example\n  !no.table.example\n").unwrap();
    let value = format!(
        "{} inline:{{ table.example=x, .dot.example=y }} *",
        f.path().display()
    );
    let list = DomainList::new(&value, true, &opts()).unwrap();
    assert!(list.matches("file.example").unwrap());
    assert!(list.matches("sub.table.example").unwrap());
    assert!(!list.matches("no.table.example").unwrap());
    assert!(list.matches("anything.else").unwrap());
    let list = DomainList::new("inline:{ .dot.example=y }", false, &opts()).unwrap();
    assert!(list.matches("a.dot.example").unwrap());
    assert!(!list.matches("dot.example").unwrap());
    let list = DomainList::new("regexp:{ {/^mail\\./ y} }", false, &opts()).unwrap();
    assert!(list.matches("mail.example").unwrap());
    assert!(!list.matches("x.mail.example").unwrap());
}

#[test]
fn domain_table_errors_propagate() {
    let list = DomainList::new("fail:x", true, &opts()).unwrap();
    assert!(list.matches("a.b").unwrap_err().is_temporary());
    assert!(DomainList::new("nosuchtype:x", true, &opts()).is_err());
}

#[test]
fn networks() {
    let list = NetworkList::new(
        "127.0.0.0/8, [::1]/128 !192.168.1.0/24 192.168.0.0/16 [fe80::]/10 10.1.2.3 2001:db8::/32",
        &opts(),
    )
    .unwrap();
    assert!(list.matches(ip("127.1.2.3")).unwrap());
    assert!(list.matches(ip("::1")).unwrap());
    assert!(!list.matches(ip("192.168.1.7")).unwrap());
    assert!(list.matches(ip("192.168.2.7")).unwrap());
    assert!(list.matches(ip("fe80::1")).unwrap());
    assert!(list.matches(ip("10.1.2.3")).unwrap());
    assert!(!list.matches(ip("10.1.2.4")).unwrap());
    assert!(list.matches(ip("2001:db8:1::5")).unwrap());
    assert!(!list.matches(ip("::2")).unwrap());
}

#[test]
fn network_tables_and_errors() {
    let list =
        NetworkList::new("cidr:{ {10.0.0.0/8 ok} } inline:{ 192.0.2.1=x }", &opts()).unwrap();
    assert!(list.matches(ip("10.2.3.4")).unwrap());
    assert!(list.matches(ip("192.0.2.1")).unwrap());
    assert!(!list.matches(ip("192.0.2.2")).unwrap());
    assert!(NetworkList::new("1.2.3.4/24", &opts()).is_err());
    assert!(NetworkList::new("1.2.3.0/33", &opts()).is_err());
    assert!(NetworkList::new("example.com", &opts()).is_err());
}

#[test]
fn network_list_with_a_missing_table_defers_instead_of_failing() {
    assert!(NetworkList::new("127.0.0.1/32 cidr:/nonexistent/x", &opts()).is_err());
    let list = NetworkList::new_deferring("127.0.0.1/32 cidr:/nonexistent/x", &opts()).unwrap();
    assert!(list.matches("127.0.0.1".parse().unwrap()).unwrap());
    assert!(list.matches("127.0.0.2".parse().unwrap()).is_err());
    assert!(NetworkList::new_deferring("not-a-network", &opts()).is_err());
}
