//! The host side of a pod's NIC: veth pairs named as Kube-OVN names them, moving a link into
//! a container's network namespace, deleting links idempotently.
//!
//! What is created is returned ([`VethPair`]) so that a failed CNI ADD can undo it: deleting
//! the host end deletes both ends, wherever the peer went.

use std::os::fd::{AsFd, AsRawFd};

use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo};
use netlink_packet_route::link::{LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_EXCL};

use super::netlink::{Error, Link, Netlink};
use super::netns::NetnsFile;

/// The longest interface name the kernel takes (`IFNAMSIZ` - 1).
pub const MAX_IFNAME: usize = 15;

/// The `txqueuelen` Kube-OVN gives a pod's host veth.
pub const HOST_TXQUEUELEN: u32 = 1000;

/// Checks that the kernel would accept `name` as an interface name.
pub fn check_ifname(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= MAX_IFNAME
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0);
    if ok {
        Ok(())
    } else {
        Err(Error::BadName(name.to_string()))
    }
}

/// The host and container names of a pod's veth pair, as Kube-OVN makes them
/// (`generateNicName`): `<cid[0:12]>_h` / `<cid[0:12]>_c` for `eth0`,
/// `<cid[0:12-len(if)]>_<if>_h` / `_c` otherwise (a KubeVirt-style 14-character ifname
/// starting with `pod` is first cut to `ifname[3..10]`). Both are at most 15 bytes.
///
/// Where Kube-OVN would go wrong, kovs differs: an ifname of 12 or more bytes (Kube-OVN drops
/// the container id or panics) gives `<cid[0:4]>_<8 hex of a hash of the ifname>_h`; a container
/// id shorter than needed is used whole.
pub fn veth_names(container_id: &str, ifname: &str) -> (String, String) {
    let prefix = |n: usize| -> &str {
        let mut cut = container_id.len().min(n);
        while !container_id.is_char_boundary(cut) {
            cut -= 1;
        }
        &container_id[..cut]
    };
    let base = if ifname == "eth0" {
        prefix(12).to_string()
    } else {
        let ifname = if ifname.starts_with("pod") && ifname.len() == 14 && ifname.is_ascii() {
            &ifname[3..10]
        } else {
            ifname
        };
        if ifname.len() < 12 {
            format!("{}_{ifname}", prefix(12 - ifname.len()))
        } else {
            format!("{}_{:08x}", prefix(4), fnv1a(ifname.as_bytes()) as u32)
        }
    };
    (format!("{base}_h"), format!("{base}_c"))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A veth pair as created, both ends still in the namespace of the [`Netlink`] that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethPair {
    pub host: Link,
    pub peer: Link,
}

impl Netlink {
    /// `ip link add HOST mtu MTU txqueuelen 1000 type veth peer name PEER mtu MTU`: both ends
    /// down, the MTU (when given) on both. A link already named `host` or `peer` is an error
    /// (EEXIST); nothing is left behind on failure (the kernel makes both ends or neither).
    pub async fn create_veth(
        &self,
        host: &str,
        peer: &str,
        mtu: Option<u32>,
    ) -> Result<VethPair, Error> {
        self.add_veth(host, peer, mtu, |_| {}, &self.netns_name())
            .await?;
        let host_link = self.require_link(host).await?;
        let peer_link = self.require_link(peer).await?;
        Ok(VethPair {
            host: host_link,
            peer: peer_link,
        })
    }

    /// A veth pair whose peer is made right inside `ns`, named `peer`, with `peer_mac` and
    /// the MTU (`ip link add HOST ... type veth peer name PEER netns NS address MAC`): no move
    /// of a link between namespaces afterwards, which costs the kernel a network-wide
    /// synchronisation (~10 ms). Both ends down; the host end is returned (find the peer
    /// through a [`Netlink::connect_in`] handle on `ns`). Nothing is left behind on failure.
    pub async fn create_veth_into(
        &self,
        host: &str,
        peer: &str,
        mtu: Option<u32>,
        peer_mac: Option<[u8; 6]>,
        ns: &NetnsFile,
    ) -> Result<Link, Error> {
        let fd = ns.as_fd().as_raw_fd();
        let place = |m: &mut LinkMessage| {
            m.attributes.push(LinkAttribute::NetNsFd(fd));
            if let Some(mac) = peer_mac {
                m.attributes.push(LinkAttribute::Address(mac.to_vec()));
            }
        };
        self.add_veth(
            host,
            peer,
            mtu,
            place,
            &format!("{} and {ns}", self.netns_name()),
        )
        .await?;
        self.require_link(host).await
    }

    /// One RTM_NEWLINK for a veth pair; `peer_extra` adds the peer's own attributes.
    async fn add_veth(
        &self,
        host: &str,
        peer: &str,
        mtu: Option<u32>,
        peer_extra: impl FnOnce(&mut LinkMessage),
        place: &str,
    ) -> Result<(), Error> {
        check_ifname(host)?;
        check_ifname(peer)?;
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_string()));
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(host.to_string()));
        msg.attributes
            .push(LinkAttribute::TxQueueLen(HOST_TXQUEUELEN));
        if let Some(mtu) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
            peer_msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        peer_extra(&mut peer_msg);
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.write(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .await
            .map_err(|e| Error::request(format!("creating veth pair {host}/{peer} in {place}"), e))
    }

    /// The link named `name`, or [`Error::NoLink`].
    pub async fn require_link(&self, name: &str) -> Result<Link, Error> {
        self.link(name).await?.ok_or_else(|| Error::NoLink {
            name: name.to_string(),
            netns: self.netns_name(),
        })
    }

    /// Whether a link named `name` exists (in this handle's namespace).
    pub async fn link_exists(&self, name: &str) -> Result<bool, Error> {
        Ok(self.link(name).await?.is_some())
    }

    /// `ip link set LINK txqueuelen N`.
    pub async fn set_txqueuelen(&self, link: &Link, qlen: u32) -> Result<(), Error> {
        self.set_link(link, format!("setting txqueuelen {qlen}"), |m| {
            m.attributes.push(LinkAttribute::TxQueueLen(qlen))
        })
        .await
    }

    /// Brings the host end of a pod's veth up with `txqueuelen 1000` (one request).
    pub async fn set_host_veth_up(&self, link: &Link) -> Result<(), Error> {
        self.set_link(
            link,
            format!("bringing up with txqueuelen {HOST_TXQUEUELEN}"),
            |m| {
                m.header.change_mask = LinkFlags::Up;
                m.header.flags = LinkFlags::Up;
                m.attributes
                    .push(LinkAttribute::TxQueueLen(HOST_TXQUEUELEN));
            },
        )
        .await
    }

    /// `ip link set LINK netns NS` (by the namespace's file descriptor). The link arrives down,
    /// keeping its name (and its index when free there); look it up again through a
    /// [`Netlink::connect_in`] handle on `ns`.
    pub async fn move_to_netns(&self, link: &Link, ns: &NetnsFile) -> Result<(), Error> {
        let fd = ns.as_fd().as_raw_fd();
        self.set_link(link, format!("moving to network namespace {ns}"), |m| {
            m.attributes.push(LinkAttribute::NetNsFd(fd))
        })
        .await
    }

    /// Deletes the link named `name` (a veth: both ends); `Ok(false)` when there is none, so
    /// DEL and rollbacks can repeat it.
    pub async fn delete_link(&self, name: &str) -> Result<bool, Error> {
        check_ifname(name)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.write(RouteNetlinkMessage::DelLink(msg), 0).await {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(Error::request(
                format!("deleting link {name} in {}", self.netns_name()),
                e,
            )),
        }
    }

    /// Deletes the veth named `name` (both ends) as CNI DEL does: `Ok(false)` when there is
    /// none, [`Error::WrongKind`] (and nothing deleted) when `name` is some other kind of link.
    pub async fn delete_veth(&self, name: &str) -> Result<bool, Error> {
        let Some(link) = self.link(name).await? else {
            return Ok(false);
        };
        if link.kind.as_deref() != Some("veth") {
            return Err(Error::WrongKind {
                name: name.to_string(),
                netns: self.netns_name(),
                found: link.kind.unwrap_or_else(|| "a device".into()),
                expected: "veth",
            });
        }
        let mut msg = LinkMessage::default();
        msg.header.index = link.index;
        match self.write(RouteNetlinkMessage::DelLink(msg), 0).await {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(Error::request(
                format!("deleting veth {link} in {}", self.netns_name()),
                e,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn kube_ovn_names() {
        assert_eq!(
            veth_names(CID, "eth0"),
            ("0123456789ab_h".into(), "0123456789ab_c".into())
        );
        assert_eq!(
            veth_names(CID, "net1"),
            ("01234567_net1_h".into(), "01234567_net1_c".into())
        );
        // KubeVirt: pod + 7 + 4.
        assert_eq!(veth_names(CID, "pod16367aacb67").0, "01234_16367aa_h");
        for ifname in [
            "eth0",
            "net1",
            "a",
            "abcdefghijk",
            "abcdefghijkl",
            "x".repeat(15).as_str(),
        ] {
            let (h, c) = veth_names(CID, ifname);
            assert!(h.len() <= MAX_IFNAME && c.len() <= MAX_IFNAME, "{h} {c}");
            check_ifname(&h).unwrap();
            check_ifname(&c).unwrap();
        }
        assert_ne!(
            veth_names(CID, "abcdefghijkl").0,
            veth_names(CID, "abcdefghijkm").0
        );
        assert_eq!(veth_names("abc", "eth0").0, "abc_h");
    }

    #[test]
    fn ifname_check() {
        for bad in ["", "a/b", "a b", "0123456789abcdef", ".", "a:b"] {
            assert!(matches!(check_ifname(bad), Err(Error::BadName(_))), "{bad}");
        }
        check_ifname("0123456789abcde").unwrap();
    }
}
