//! flowlib against a real ovs-vswitchd: 10k typed flows in one bundle dumped back through
//! flow-stats and equal to what was sent (and to what ovs-ofctl prints), a bundle with one bad
//! flow changes nothing and names it, the Geneve TLV map is installed once and then reused.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use flowlib::batch::Batch;
use flowlib::client::{dump_flows, ensure_tlv_maps};
use flowlib::conn::{BundleOptions, ConnOptions, Connection};
use flowlib::wire::message::TlvMap;
use flowlib::wire::oxm::{eth_type, mac_to_u128};
use flowlib::wire::{Action, Field, Flow, FlowMod, Instructions, Match};
use kovs_tests::{OvsSandbox, SandboxOptions};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn route(i: u32) -> Flow {
    let mut m = Match::new();
    m.eth_type(eth_type::IPV4)
        .ipv4_dst(Ipv4Addr::from(0x0a00_0000 + i));
    let b = i.to_be_bytes();
    Flow::new(
        20,
        100,
        m,
        Instructions::apply([
            Action::set_field(
                Field::EthDst,
                mac_to_u128([2, 0xee, b[0], b[1], b[2], b[3]]),
            ),
            Action::output(1 + i % 100),
        ]),
    )
    .with_cookie(0x6b00_0000_0000_0000 | i as u64)
}

async fn connect(sb: &OvsSandbox) -> Connection {
    Connection::connect(&sb.mgmt_target("br-int"), ConnOptions::default())
        .await
        .expect("connects to the bridge's mgmt socket")
}

#[test]
fn ten_thousand_flows_in_one_bundle_come_back_equal() {
    let sb = OvsSandbox::start(SandboxOptions::default()).unwrap();
    rt().block_on(async {
        let conn = connect(&sb).await;
        let flows: Vec<Flow> = (0..10_000).map(route).collect();
        let mut batch = Batch::with_capacity(10_000 * 120, 10_000);
        for f in &flows {
            batch.push_flow_mod(&FlowMod::add(f.clone())).unwrap();
        }
        let outcome = conn
            .commit_bundle(batch.iter(), &BundleOptions::default())
            .await
            .unwrap();
        assert!(outcome.is_ok(), "{outcome}");
        // Back through flow-stats multipart, decoded into the same typed flows.
        let back = dump_flows(&conn, 255, 0, 0).await.unwrap();
        assert_eq!(back.len(), 10_000);
        let sent: BTreeSet<String> = flows.iter().map(|f| format!("{f:?}")).collect();
        let got: BTreeSet<String> = back.iter().map(|s| format!("{:?}", s.flow)).collect();
        assert!(sent == got, "dumped flows differ from the sent ones");
        // And ovs-ofctl prints exactly flowlib's Display of each.
        let ofctl: BTreeSet<String> = sb.dump_flows("br-int").unwrap().into_iter().collect();
        let ours: BTreeSet<String> = flows.iter().map(|f| f.to_string()).collect();
        let only_ofctl: Vec<_> = ofctl.difference(&ours).take(3).collect();
        let only_ours: Vec<_> = ours.difference(&ofctl).take(3).collect();
        assert!(
            only_ofctl.is_empty() && only_ours.is_empty(),
            "ovs-ofctl: {only_ofctl:?}\nflowlib: {only_ours:?}"
        );
    });
}

#[test]
fn a_bundle_with_one_bad_flow_changes_nothing_and_names_it() {
    let sb = OvsSandbox::start(SandboxOptions::default()).unwrap();
    rt().block_on(async {
        let conn = connect(&sb).await;
        let first = conn
            .commit_bundle(
                vec![{
                    let mut b = Vec::new();
                    FlowMod::add(route(1)).encode(0, &mut b);
                    b
                }],
                &BundleOptions::default(),
            )
            .await
            .unwrap();
        assert!(first.is_ok(), "{first}");
        let before = sb.dump_flows("br-int").unwrap();

        // Message 3 of 6 jumps back to table 0 from table 20: OFPBIC_BAD_TABLE_ID.
        let mut flows: Vec<Flow> = (100..106).map(route).collect();
        flows[3].instructions = Instructions {
            goto_table: Some(0),
            ..Instructions::default()
        };
        let mut batch = Batch::new();
        for f in &flows {
            batch.push_flow_mod(&FlowMod::add(f.clone())).unwrap();
        }
        let outcome = conn
            .commit_bundle(batch.iter(), &BundleOptions::default())
            .await
            .unwrap();
        assert!(!outcome.committed, "{outcome}");
        assert_eq!(outcome.rejected.len(), 1, "{outcome}");
        assert_eq!(outcome.rejected[0].index, 3, "{outcome}");
        let name = outcome.rejected[0].error.to_string();
        assert!(name.contains("BAD_TABLE_ID"), "{name}");
        // The error names the flow: index 3 is this one.
        assert_eq!(
            flows[outcome.rejected[0].index].to_string(),
            flows[3].to_string()
        );
        assert_eq!(
            sb.dump_flows("br-int").unwrap(),
            before,
            "the table must be unchanged"
        );
    });
}

#[test]
fn tlv_map_is_installed_once_then_reused() {
    let sb = OvsSandbox::start(SandboxOptions::default()).unwrap();
    rt().block_on(async {
        let conn = connect(&sb).await;
        let map = TlvMap {
            option_class: 0x0102,
            option_type: 0x80,
            option_len: 4,
            index: 0,
        };
        let first = ensure_tlv_maps(&conn, &[map]).await.unwrap();
        assert_eq!(first.installed, vec![map]);
        assert!(first.reused.is_empty());
        // ovs-ofctl sees it.
        let text = sb
            .ofctl(&["dump-tlv-map", &sb.mgmt_target("br-int")])
            .unwrap();
        assert!(
            text.contains("0x102") && text.contains("0x80") && text.contains("tun_metadata0"),
            "{text}"
        );
        // A second controller session reuses it instead of failing on a duplicate add.
        drop(conn);
        let conn = connect(&sb).await;
        let second = ensure_tlv_maps(&conn, &[map]).await.unwrap();
        assert_eq!(second.reused, vec![map]);
        assert!(second.installed.is_empty());
        // A flow matching and setting the option installs and reads back.
        let mut m = Match::new();
        m.set_tun_metadata(0, 4, 0x1234, None);
        let f = Flow::new(
            0,
            10,
            m,
            Instructions::apply([
                Action::RegLoad2(
                    flowlib::wire::MatchField::new(Field::TunMetadata(0), 4, 0x99, None).unwrap(),
                ),
                Action::output(1),
            ]),
        );
        let mut b = Vec::new();
        FlowMod::add(f.clone()).encode(0, &mut b);
        let out = conn
            .commit_bundle(vec![b], &BundleOptions::default())
            .await
            .unwrap();
        assert!(out.is_ok(), "{out}");
        let dumped = sb.dump_flows("br-int").unwrap();
        assert!(
            dumped.iter().any(|l| l.contains("tun_metadata0=0x1234")
                && l.contains("set_field:0x99->tun_metadata0")),
            "{dumped:?}"
        );
    });
}
