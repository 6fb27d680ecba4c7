//! OpenFlow 1.3 with Nicira/ONF extensions: typed flows, wire codec, bundles, switch connection.
