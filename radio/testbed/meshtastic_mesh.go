package testbed

import (
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"lifeline/radio/meshtastic/meshpb"
)

// The device's mesh side: its transmit queue, listen before talk, the duty
// cycle, managed flooding and acknowledgements.

// meshTx is a packet waiting in the transmit queue, or on air.
type meshTx struct {
	pkt       *airPacket
	frame     []byte
	airtime   time.Duration
	priority  meshpb.MeshPacket_Priority
	seq       uint64    // arrival, for first in first out within a priority
	notBefore time.Time // its contention delay: not sent before
	drawn     bool      // notBefore is set (an own packet's is drawn when it reaches the head of the queue)
	end       time.Time // on air until then
	own       bool      // from the host: refusals are reported to it
	relay     bool      // a rebroadcast of someone else's packet
}

// before orders the queue: higher priority first, then first come.
func (tx *meshTx) before(o *meshTx) bool {
	return tx.priority > o.priority || tx.priority == o.priority && tx.seq < o.seq
}

// meshAckWait is an own packet that wants an acknowledgement.
type meshAckWait struct {
	tx       *meshTx
	deadline time.Time // zero while it waits to be sent
	resent   int
}

// fromHost takes ToRadio.packet: a packet the host wants sent.
func (d *meshtasticDevice) fromHost(now time.Time, p *meshpb.MeshPacket) {
	if p.Id == 0 {
		p.Id = d.newID()
	}
	refuse := func(reason meshpb.Routing_Error) {
		d.queueStatus(errnoUnknown, p.Id)
		d.routing(now, d.node, p.Id, reason)
	}
	data := p.GetDecoded()
	switch {
	case data == nil: // the host sends plain Data; the device encrypts
		refuse(meshpb.Routing_BAD_REQUEST)
		return
	case p.Channel != 0: // only the primary channel is set up
		refuse(meshpb.Routing_NO_CHANNEL)
		return
	case len(data.Payload) > meshMaxPayload:
		refuse(meshpb.Routing_TOO_LARGE)
		return
	case !d.transmits():
		d.queueStatus(errnoDisabled, p.Id)
		return
	case data.Portnum == meshpb.PortNum_TEXT_MESSAGE_APP && !d.lastText.IsZero() && now.Sub(d.lastText) < meshTextInterval:
		refuse(meshpb.Routing_RATE_LIMIT_EXCEEDED)
		return
	}
	to := p.To
	if to == 0 {
		to = meshBroadcast
	}
	// The host's hop limit is kept: "If unset treated as zero (no
	// forwarding, send to direct neighbor nodes only)" (MeshPacket.hop_limit),
	// unless the packet wants an ACK, which a zero-hop packet could not
	// have from its flood: then the device's own hop limit (as Meshtastic's
	// client authors found, meshmonitor pull request #4479).
	hops := min(p.HopLimit, meshMaxHops)
	if hops == 0 && p.WantAck {
		hops = d.cfg.hopLimit
	}
	// The firmware adds a bitfield to the Data of every packet it
	// originates: bit 0 "ok to MQTT" (lora.config_ok_to_mqtt, off here),
	// bit 1 want response ("A Meshtastic Packet Over the Air",
	// meshtastic.org/docs/overview; firmware pull request #4643). Two
	// more bytes on air: 232 or 233 bytes of payload no longer fit a
	// LoRa frame and are refused TOO_LARGE.
	data = proto.CloneOf(data)
	bits := uint32(0)
	if data.WantResponse {
		bits |= 2
	}
	data.Bitfield = &bits
	a := &airPacket{to: to, from: d.node, id: p.Id, hopLimit: hops, hopStart: hops, wantAck: p.WantAck,
		channelHash: d.cfg.hash, relayNode: byte(d.node), data: data}
	frame, err := a.encode()
	if err != nil {
		refuse(meshpb.Routing_TOO_LARGE)
		return
	}
	tx := &meshTx{pkt: a, frame: frame, airtime: d.cfg.modem.Airtime(len(frame)), own: true, priority: p.Priority}
	if tx.priority == meshpb.MeshPacket_UNSET {
		tx.priority = meshpb.MeshPacket_DEFAULT
		if p.WantAck {
			tx.priority = meshpb.MeshPacket_RELIABLE // "If priority is unset but the message is marked as want_ack"
		}
	}
	// Over the region's duty cycle the device refuses: "Cannot send
	// currently because duty cycle regulations will be violated"
	// (Routing.Error DUTY_CYCLE_LIMIT). A packet it accepted waits in the
	// queue until the hour allows it ("will stop sending data when it
	// reaches the hourly limit and will start again when it is allowed
	// to do so", LoRa config, Override Duty Cycle Limit).
	if d.duty != nil && d.duty.Wait(d.free(now), tx.airtime) != 0 {
		refuse(meshpb.Routing_DUTY_CYCLE_LIMIT)
		return
	}
	if len(d.queue) >= meshTxQueue {
		d.full = true
		d.queueStatus(errnoUnknown, p.Id) // free = 0: the queue is full, the packet dropped
		return
	}
	if data.Portnum == meshpb.PortNum_TEXT_MESSAGE_APP {
		d.lastText = now
	}
	d.remember(d.node, p.Id)
	d.enqueue(tx)
	if p.WantAck && len(d.pending) < 2*meshTxQueue {
		d.pending[p.Id] = &meshAckWait{tx: tx}
	}
	d.queueStatus(errnoOK, p.Id)
}

// free is when the radio is free to send: now, or the end of its
// transmission. The duty cycle is judged from there: at now, a
// transmission still on air counts only for the part of it already sent.
func (d *meshtasticDevice) free(now time.Time) time.Time {
	if d.sending != nil && d.sending.end.After(now) {
		return d.sending.end
	}
	return now
}

// transmits reports whether the device may transmit at all: not with
// transmit disabled, nor without a region ("As long as this is not set,
// the node ... [will] not transmit any packets", LoRa config, Region).
func (d *meshtasticDevice) transmits() bool {
	return d.cfg.region != meshpb.Config_LoRaConfig_UNSET && !d.opts.TxDisabled
}

func (d *meshtasticDevice) enqueue(tx *meshTx) {
	d.seq++
	tx.seq = d.seq
	d.queue = append(d.queue, tx)
	if len(d.queue) >= meshTxQueue {
		d.full = true
	}
}

// slots is n contention slots at the device's modulation.
func (d *meshtasticDevice) slots(n int) time.Duration {
	return time.Duration(n) * slotTime(d.cfg.modem)
}

// Poll sends what the queue holds when its time comes and the channel is
// free, and retransmits what was not acknowledged.
func (d *meshtasticDevice) Poll(now time.Time) []byte {
	if d.protobufs && now.Sub(d.lastHost) > d.cfg.timeout {
		d.protobufs, d.configured = false, false
		d.logf("INFO  | [SerialAPI] No client for %s: closing the API", d.cfg.timeout)
	}
	d.retransmit(now)
	if d.sending != nil {
		return d.flush()
	}
	// The device's own packets (and its ACKs) leave in the queue's order,
	// the head waiting a random backoff when its turn comes; relayed
	// packets wait out their contention delay from when they were heard.
	var head, next *meshTx
	for _, tx := range d.queue {
		switch {
		case !tx.relay && (head == nil || tx.before(head)):
			head = tx
		case tx.relay && !tx.notBefore.After(now) && (next == nil || tx.before(next)):
			next = tx
		}
	}
	if head != nil {
		if !head.drawn {
			head.drawn = true
			head.notBefore = now.Add(d.slots(d.rnd.IntN(1 << cwForUtilisation(d.utilisation(now)))))
		}
		if !head.notBefore.After(now) && (next == nil || head.before(next)) {
			next = head
		}
	}
	if next == nil {
		return d.flush()
	}
	// Listen before talk: "all transmitters must perform Channel Activity
	// Detection (CAD) before attempting to transmit. If the channel is
	// considered busy, the node will wait until it is not anymore ... a
	// random multiple of slot times" (mesh-algo, layer 1).
	if d.radio.Busy(now) {
		next.notBefore = now.Add(d.slots(1 + d.rnd.IntN(1<<cwForUtilisation(d.utilisation(now)))))
		return d.flush()
	}
	if d.duty != nil {
		switch w := d.duty.Wait(now, next.airtime); {
		case w < 0: // longer than the whole budget: it can never go
			d.drop(now, next, meshpb.Routing_DUTY_CYCLE_LIMIT)
			return d.flush()
		case w > 0:
			next.notBefore = now.Add(w)
			return d.flush()
		}
		d.duty.Record(now, next.airtime)
	}
	d.unqueue(next)
	d.sending = next
	next.end = now.Add(next.airtime)
	d.radio.Transmit(now, next.airtime, next.frame)
	d.used(now.Add(next.airtime), next.airtime)
	return d.flush()
}

// TxDone is the end of the device's transmission: an own packet that
// wants an acknowledgement starts waiting for it.
func (d *meshtasticDevice) TxDone(now time.Time) []byte {
	tx := d.sending
	d.sending = nil
	if tx != nil && tx.own {
		if w, ok := d.pending[tx.pkt.id]; ok && w.tx == tx {
			w.deadline = now.Add(d.ackTimeout(tx))
		}
	}
	return d.flush()
}

// ackTimeout is how long an own packet waits for its acknowledgement:
// "based on the maximum time it would take to receive an (implicit) ACK,
// taking the airtime of the sent packet and any processing delay into
// account" (mesh-algo, layer 2). A broadcast is acknowledged by the first
// rebroadcast, which comes within a contention window; a direct message's
// ACK comes back over every hop.
func (d *meshtasticDevice) ackTimeout(tx *meshTx) time.Duration {
	hop := d.slots(1<<cwMin+1<<cwMax) + tx.airtime
	if tx.pkt.to == meshBroadcast {
		return 2 * hop
	}
	return 2 * time.Duration(tx.pkt.hopStart+1) * hop
}

// retransmit sends again the own packets whose acknowledgement is late,
// and after the last try tells the host MAX_RETRANSMIT.
func (d *meshtasticDevice) retransmit(now time.Time) {
	for id, w := range d.pending {
		if w.deadline.IsZero() || w.deadline.After(now) {
			continue
		}
		if w.resent >= meshMaxRetransmit {
			delete(d.pending, id)
			d.routing(now, d.node, id, meshpb.Routing_MAX_RETRANSMIT)
			continue
		}
		w.resent++
		w.deadline = time.Time{}
		if len(d.queue) >= meshTxQueue {
			delete(d.pending, id)
			d.routing(now, d.node, id, meshpb.Routing_MAX_RETRANSMIT)
			continue
		}
		w.tx.drawn = false
		d.enqueue(w.tx)
	}
}

// drop takes a packet out of the queue unsent; the host hears of its own.
func (d *meshtasticDevice) drop(now time.Time, tx *meshTx, reason meshpb.Routing_Error) {
	d.unqueue(tx)
	if tx.own {
		delete(d.pending, tx.pkt.id)
		d.routing(now, d.node, tx.pkt.id, reason)
	}
}

func (d *meshtasticDevice) unqueue(tx *meshTx) {
	i := slices.Index(d.queue, tx)
	if i < 0 {
		return
	}
	d.queue = slices.Delete(d.queue, i, i+1)
	if d.full && len(d.queue) < meshTxQueue {
		d.full = false
		d.queueStatus(errnoOK, 0) // room again
	}
}

// used notes airtime on the channel (heard or sent) for the utilisation.
func (d *meshtasticDevice) used(end time.Time, dur time.Duration) {
	if len(d.use) >= meshUtilRecords {
		d.use = d.use[1:]
	}
	d.use = append(d.use, meshUse{end, dur})
}

// utilisation is the share of the last minute the channel was busy.
func (d *meshtasticDevice) utilisation(now time.Time) float64 {
	from := now.Add(-meshUtilWindow)
	i := 0
	for i < len(d.use) && !d.use[i].end.After(from) {
		i++
	}
	d.use = d.use[i:]
	var busy time.Duration
	for _, u := range d.use {
		busy += min(u.dur, u.end.Sub(from))
	}
	return float64(busy) / float64(meshUtilWindow)
}

// remember notes (sender, id) as seen; it reports whether it was new.
func (d *meshtasticDevice) remember(from, id uint32) bool {
	k := [2]uint32{from, id}
	if d.recent[k] {
		return false
	}
	if len(d.order) >= meshRecent {
		delete(d.recent, d.order[0])
		d.order = d.order[1:]
	}
	d.recent[k] = true
	d.order = append(d.order, k)
	return true
}

// heard notes a node in the node database, forgetting the one heard
// longest ago when it is full; it reports whether the node was known.
func (d *meshtasticDevice) heard(now time.Time, p *airPacket, snr float64) bool {
	num, hops := p.from, p.hopStart-p.hopLimit
	if n, ok := d.nodes[num]; ok {
		n.lastHeard, n.snr, n.hops = now, snr, hops
		return true
	}
	if len(d.nodes) >= meshNodeDB {
		var oldest uint32
		for k, n := range d.nodes {
			if oldest == 0 || n.lastHeard.Before(d.nodes[oldest].lastHeard) {
				oldest = k
			}
		}
		delete(d.nodes, oldest)
	}
	d.nodes[num] = &meshNode{lastHeard: now, snr: snr, hops: hops}
	return false
}

// Received is a frame heard on air.
func (d *meshtasticDevice) Received(now time.Time, frame []byte, rssi int, snr float64) []byte {
	d.used(now, d.cfg.modem.Airtime(len(frame)))
	p, err := parseAirPacket(frame)
	if err != nil {
		return d.flush() // another kind of radio's frame: a Meshtastic radio would not have heard it
	}
	d.logf("DEBUG | [Router] Received from=0x%08x id=0x%08x hop_lim=%d hop_start=%d ch=0x%02x rxSNR=%g rxRSSI=%d",
		p.from, p.id, p.hopLimit, p.hopStart, p.channelHash, snr, rssi)
	if p.from == d.node {
		// Our own packet, rebroadcast by a neighbour: for a packet that
		// wants an ACK, the implicit ACK ("the original sender listens to
		// see if at least one node is rebroadcasting this packet",
		// MeshPacket.want_ack).
		d.acknowledged(now, p.id, d.node)
		return d.flush()
	}
	if !d.remember(p.from, p.id) {
		d.heardAgain(now, p)
		return d.flush()
	}
	known := d.heard(now, p, snr)
	if p.channelHash != d.cfg.hash {
		// Another channel, whose key the device lacks: not for its host;
		// in mode ALL it still relays it ("rebroadcast ALL messages from
		// its primary mesh as well as other meshes with the same modem
		// settings, including when encryption settings differ", device
		// config, Rebroadcast Mode).
		if d.cfg.mode == meshpb.Config_DeviceConfig_ALL || d.cfg.mode == meshpb.Config_DeviceConfig_ALL_SKIP_DECODING {
			d.rebroadcast(now, p, snr)
		}
		return d.flush()
	}
	port := p.data.Portnum
	if d.cfg.mode == meshpb.Config_DeviceConfig_CORE_PORTNUMS_ONLY && !corePort(port) {
		// "Ignores packets from non-standard portnums" (Rebroadcast Mode):
		// neither delivered nor relayed.
		return d.flush()
	}
	if p.to == d.node || p.to == meshBroadcast {
		d.toHost(&meshpb.MeshPacket{From: p.from, To: p.to, Id: p.id, RxTime: uint32(now.Unix()),
			RxSnr: float32(snr), RxRssi: int32(rssi), HopLimit: p.hopLimit, HopStart: p.hopStart,
			WantAck: p.wantAck, ViaMqtt: p.viaMQTT, NextHop: uint32(p.nextHop), RelayNode: uint32(p.relayNode),
			TransportMechanism: meshpb.MeshPacket_TRANSPORT_LORA,
			PayloadVariant:     &meshpb.MeshPacket_Decoded{Decoded: p.data}})
	}
	if p.to == d.node {
		if port == meshpb.PortNum_ROUTING_APP && p.data.RequestId != 0 {
			d.acknowledged(now, p.data.RequestId, 0) // the destination's own ACK, already given to the host
		}
		if p.wantAck {
			d.ack(now, p)
		}
		return d.flush()
	}
	if d.relays(known) {
		d.rebroadcast(now, p, snr)
	}
	return d.flush()
}

// acknowledged ends the wait for an own packet's acknowledgement; with a
// sender, the host is told (an implicit ACK comes from the device itself).
func (d *meshtasticDevice) acknowledged(now time.Time, id, from uint32) {
	w, ok := d.pending[id]
	if !ok {
		return
	}
	delete(d.pending, id)
	d.unqueue(w.tx) // a retransmission waiting is not needed any more
	if from != 0 {
		d.routing(now, from, id, meshpb.Routing_NONE)
	}
}

// ack answers a direct message that wants one: "the intended recipient
// will also send a real ACK all the way back to the original sender"
// (mesh-algo, layer 2): a ROUTING_APP packet whose request_id is the
// message's id, at the highest priority.
func (d *meshtasticDevice) ack(now time.Time, p *airPacket) {
	a := &airPacket{to: p.from, from: d.node, id: d.newID(), hopLimit: d.cfg.hopLimit, hopStart: d.cfg.hopLimit,
		channelHash: d.cfg.hash, relayNode: byte(d.node),
		data: &meshpb.Data{Portnum: meshpb.PortNum_ROUTING_APP, Payload: routingBody(meshpb.Routing_NONE), RequestId: p.id}}
	frame, err := a.encode()
	if err != nil || len(d.queue) >= meshTxQueue || !d.transmits() {
		return
	}
	d.remember(d.node, a.id)
	d.enqueue(&meshTx{pkt: a, frame: frame, airtime: d.cfg.modem.Airtime(len(frame)), priority: meshpb.MeshPacket_ACK,
		notBefore: now.Add(d.slots(d.rnd.IntN(1 << cwMin))), drawn: true})
}

// relays reports whether the device's role and rebroadcast mode let it
// relay a packet of its channel (device config: Roles, Rebroadcast Mode).
func (d *meshtasticDevice) relays(knownSender bool) bool {
	switch {
	case d.cfg.role == meshpb.Config_DeviceConfig_CLIENT_MUTE:
		return false // "does not forward packets from other devices"
	case d.cfg.mode == meshpb.Config_DeviceConfig_NONE:
		return false
	case d.cfg.mode == meshpb.Config_DeviceConfig_KNOWN_ONLY && !knownSender:
		return false // "ignoring messages from nodenums not in the node's known list"
	}
	return true
}

// infrastructure roles rebroadcast early and never cancel (mesh-algo:
// "An exception to this rule is for the ROUTER and REPEATER roles, that
// have a higher priority to rebroadcast and will do so even if they hear
// another node rebroadcasting").
func (d *meshtasticDevice) infrastructure() bool {
	return d.cfg.role == meshpb.Config_DeviceConfig_ROUTER || d.cfg.role == meshpb.Config_DeviceConfig_REPEATER
}

// rebroadcast queues a relayed copy of p with one hop less, after a
// contention delay scaled by the SNR it was heard at: "The CW size is
// small for a low SNR, such that nodes that are further away are more
// likely to flood first" (mesh-algo, managed flooding). Roles share the
// time in windows that do not overlap ("Demystifying ROUTER_LATE",
// Meshtastic's blog, September 2025): ROUTER and REPEATER in the early
// one, 2^CWmin slots long; the others after it.
func (d *meshtasticDevice) rebroadcast(now time.Time, p *airPacket, snr float64) {
	if p.hopLimit == 0 || !d.transmits() {
		return // "Packets with a hop limit of zero are discarded after processing"
	}
	if p.nextHop != 0 && p.nextHop != byte(d.node) {
		return // next-hop routing: "only the node for which the next-hop byte matches will" relay
	}
	c := *p
	c.hopLimit--
	c.relayNode = byte(d.node)
	c.nextHop = 0
	frame, err := c.encode()
	if err != nil {
		return
	}
	delay := d.slots(d.rnd.IntN(1 << cwMin))
	if !d.infrastructure() {
		delay = d.slots(1<<cwMin + d.rnd.IntN(1<<cwForSNR(snr)))
	}
	tx := &meshTx{pkt: &c, frame: frame, airtime: d.cfg.modem.Airtime(len(frame)), priority: meshpb.MeshPacket_DEFAULT,
		relay: true, notBefore: now.Add(delay), drawn: true}
	if len(d.queue) >= meshTxQueue {
		// "If the TX queue is full, and another packet arrives that is both
		// eligible for rebroadcast, and has a higher priority than the
		// lowest-priority packet in the TX queue, then the lowest-priority
		// packet in the queue is discarded" (the same blog post).
		lowest := slices.MinFunc(d.queue, func(x, y *meshTx) int { return int(x.priority) - int(y.priority) })
		if lowest.priority >= tx.priority {
			return
		}
		d.unqueue(lowest) // discarded, as the firmware does, without a word
		if lowest.own {
			delete(d.pending, lowest.pkt.id)
		}
	}
	d.enqueue(tx)
}

// heardAgain is a packet the device already had, heard from another
// relay: a CLIENT that has not relayed it yet cancels its rebroadcast
// ("before rebroadcasting, a node listens a short while to see if another
// node has already rebroadcasted the packet. If so, it will not
// rebroadcast", mesh-algo); ROUTER_LATE moves it to the late window.
func (d *meshtasticDevice) heardAgain(now time.Time, p *airPacket) {
	if d.infrastructure() {
		return
	}
	for _, tx := range d.queue {
		if !tx.relay || tx.pkt.from != p.from || tx.pkt.id != p.id {
			continue
		}
		if d.cfg.role == meshpb.Config_DeviceConfig_ROUTER_LATE {
			tx.notBefore = now.Add(d.slots(1<<cwMin + 1<<cwMax + d.rnd.IntN(1<<cwMax)))
			return
		}
		d.unqueue(tx)
		return
	}
}
