// Package meshtastic drives a Meshtastic device (a T-Beam, a Heltec, a
// RAK WisBlock, ... running Meshtastic's firmware) over its serial API, so
// that a kit can use the LoRa radio people already own: Lifeline's frames
// travel as MeshPackets on the private application port (PRIVATE_APP, 256),
// with Lifeline's own fragmentation, flooding and repair above them.
//
// The parts, as in radio/rnode: the stream framing (frame.go, pure), a
// Session that speaks the API as a state machine with time passed in
// (session.go, no I/O), and a Driver that runs a Session over a serial
// port (driver.go). The messages are Meshtastic's own protobufs, generated
// into meshpb.
//
// What the driver relies on, and where it is written down:
//   - Framing: 0x94 0xC3, a big-endian 16-bit length, a protobuf of at
//     most 512 bytes; bytes outside frames are the debug console
//     (Meshtastic's "Stream protocol" client documentation).
//   - Handshake: ToRadio.want_config_id with a nonce; the device answers
//     with my_info, metadata, node infos, channels, config and module
//     config, and ends with config_complete_id equal to the nonce
//     (mesh.proto, FromRadio.config_complete_id). FromRadio.rebooted tells
//     that the device restarted (mesh.proto).
//   - Heartbeat: ToRadio.heartbeat keeps a serial connection alive
//     (mesh.proto, Heartbeat); a serial client must be heard from at
//     least every 300 s, so the driver sends one every minute.
//   - Payloads: Data.payload holds at most 233 bytes
//     (mesh.proto, Constants.DATA_PAYLOAD_LEN); but the firmware adds
//     Data.bitfield (ok_to_mqtt) to every packet it originates (firmware
//     pull request #4643, "Adds the ok_to_mqtt bit"), two more bytes in a
//     LoRa frame of 255 that the 16-byte header leaves 239 of: a
//     PRIVATE_APP payload fits in 231 bytes (MaxPayload).
//   - Answers: QueueStatus answers each packet with the free slots of the
//     device's transmit queue and the packet's id (mesh.proto,
//     QueueStatus); a ROUTING_APP packet whose Data.request_id is a
//     packet's id tells its fate (Routing.error_reason: NONE, or
//     DUTY_CYCLE_LIMIT, RATE_LIMIT_EXCEEDED, MAX_RETRANSMIT, TOO_LARGE...).
//   - Hop limit: MeshPacket.hop_limit 0 means "send to direct neighbours
//     only" (mesh.proto); the firmware keeps a zero hop limit a client
//     gives unless the packet wants an acknowledgement (noted by client
//     authors in meshmonitor pull request #4479, and the firmware's own
//     zero-hop request/response support, pull request #9455). See
//     docs/RADIOS.md for why Lifeline sends with hop limit 0.
package meshtastic
