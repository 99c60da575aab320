//! Why portsentry.conf does not use the `configparser` crate, measured: on values Debian's own
//! file and 1.2 accept it keeps the quotes and cuts the value at `#` or `;` inside quotes.
//! If a future configparser release fixes this, this test fails and the choice can be revisited.

use configparser::ini::Ini;

#[test]
fn configparser_mangles_portsentry_values() {
    let text = "KILL_ROUTE=\"/sbin/iptables -I INPUT -s $TARGET$ -j DROP ; logger blocked\"\n\
                PORT_BANNER=\"HELLO #not a comment\"\n\
                TCP_PORTS=\"1,11\"\n";
    let mut ini = Ini::new_cs();
    ini.read(text.to_string()).expect("configparser reads it");
    let route = ini.get("default", "KILL_ROUTE").unwrap_or_default();
    let banner = ini.get("default", "PORT_BANNER").unwrap_or_default();
    let ports = ini.get("default", "TCP_PORTS").unwrap_or_default();
    println!("configparser: KILL_ROUTE={route:?} PORT_BANNER={banner:?} TCP_PORTS={ports:?}");
    assert_eq!(ports, "\"1,11\"", "quotes kept in the value");
    assert!(
        !route.contains("logger"),
        "value cut at ';' inside quotes: {route:?}"
    );
    assert!(
        !banner.contains("not a comment"),
        "value cut at '#' inside quotes: {banner:?}"
    );

    // Our parser keeps 1.2's meaning.
    let p = portsentry::config::parse(text.as_bytes(), std::path::Path::new("t.conf"));
    assert_eq!(
        p.config.kill_route.as_deref(),
        Some("/sbin/iptables -I INPUT -s $TARGET$ -j DROP ; logger blocked")
    );
    assert_eq!(
        p.config.port_banner.as_deref(),
        Some("HELLO #not a comment")
    );
    assert_eq!(p.config.tcp_ports, Some(vec![1, 11]));
}
