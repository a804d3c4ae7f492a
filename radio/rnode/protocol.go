// Package rnode is the host side of the RNode serial protocol: the commands
// the node sends its LoRa board and what the board answers, over KISS
// framing (radio/kiss). This file is the protocol as a pure state machine,
// Session: it turns the board's frames into events and says what to send,
// and does no I/O. The serial port is the driver's.
package rnode

import (
	"encoding/binary"
	"errors"
	"fmt"

	"lifeline/radio/kiss"
)

// Commands (the KISS command byte), the subset Lifeline uses.
const (
	CmdData       = 0x00
	CmdFrequency  = 0x01 // u32 BE, Hz
	CmdBandwidth  = 0x02 // u32 BE, Hz
	CmdTxPower    = 0x03 // int8, dBm
	CmdSF         = 0x04
	CmdCR         = 0x05 // 5..8 for 4/5..4/8
	CmdRadioState = 0x06
	CmdDetect     = 0x08
	CmdLeave      = 0x0A
	CmdSTALock    = 0x0B // short-term airtime limit, u16 BE, percent × 100
	CmdLTALock    = 0x0C // long-term airtime limit, likewise
	CmdReady      = 0x0F
	CmdStatRSSI   = 0x23 // u8, RSSI + 157 dBm
	CmdStatSNR    = 0x24 // int8, quarter dB
	// CmdStatCHTM: channel time, 11 bytes, sent by ESP32 and nRF52
	// boards after every transmission and about once a second besides:
	// short- and long-term airtime and
	// channel load (u16 BE each, 1/100 %), current RSSI, noise floor (u8
	// each, + 157 dBm) and interference (u8).
	CmdStatCHTM   = 0x25
	CmdStatPHYPRM = 0x26 // the modem's physical parameters, after configuration
	CmdStatCSMA   = 0x28 // the board's listen-before-talk state
	CmdPlatform   = 0x48
	CmdMCU        = 0x49
	CmdFWVersion  = 0x50
	CmdReset      = 0x55
	CmdError      = 0x90
)

// Error codes the board sends with CmdError, with RNode's meanings.
const (
	ErrorInitRadio    = 0x01 // the radio did not start
	ErrorTxFailed     = 0x02 // a transmission failed
	ErrorEEPROMLocked = 0x03
	ErrorQueueFull    = 0x04
	ErrorMemoryLow    = 0x05
	ErrorModemTimeout = 0x06 // the modem did not answer
)

// Platforms a board reports (CmdPlatform).
const (
	PlatformAVR   = 0x90 // no channel statistics: the host computes airtime
	PlatformESP32 = 0x80
	PlatformNRF52 = 0x70
)

// Values of some commands.
const (
	DetectRequest  = 0x73
	DetectResponse = 0x46
	RadioOff       = 0x00
	RadioOn        = 0x01
	Rebooted       = 0xF8 // CmdReset from the board: it has just started
)

// MaxKISS is the longest KISS frame either side sends: the board's MTU
// and the command byte, with room to spare.
const MaxKISS = 512

// Config is what the host asks the board to apply.
type Config struct {
	Frequency uint32 // Hz
	Bandwidth uint32 // Hz
	TxPower   int8   // dBm
	SF        uint8
	CR        uint8
	// Airtime limits the board enforces itself, as a fraction of the
	// short-term (about 15 s) and long-term (about an hour) windows; 0
	// leaves the board's own.
	ShortTermLimit, LongTermLimit float64
}

// ErrMismatch: the board applied another value than the one asked for.
var ErrMismatch = errors.New("radio board applied another setting")

// ErrNotRNode: the device does not answer the detect request.
var ErrNotRNode = errors.New("device is not an RNode")

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func limit(f float64) []byte { return binary.BigEndian.AppendUint16(nil, uint16(f*10000+0.5)) }

// configure is the frames that apply cfg, in order, and the echoes to
// expect.
func configure(cfg Config) []kiss.Frame {
	fs := []kiss.Frame{
		{Command: CmdFrequency, Data: u32(cfg.Frequency)},
		{Command: CmdBandwidth, Data: u32(cfg.Bandwidth)},
		{Command: CmdTxPower, Data: []byte{byte(cfg.TxPower)}},
		{Command: CmdSF, Data: []byte{cfg.SF}},
		{Command: CmdCR, Data: []byte{cfg.CR}},
	}
	if cfg.ShortTermLimit > 0 {
		fs = append(fs, kiss.Frame{Command: CmdSTALock, Data: limit(cfg.ShortTermLimit)})
	}
	if cfg.LongTermLimit > 0 {
		fs = append(fs, kiss.Frame{Command: CmdLTALock, Data: limit(cfg.LongTermLimit)})
	}
	return append(fs, kiss.Frame{Command: CmdRadioState, Data: []byte{RadioOn}})
}

// checkEcho compares the board's answer to a setting with what was asked.
// Frequencies may differ by the synthesiser's step: up to 100 Hz.
func checkEcho(asked, got kiss.Frame) error {
	if len(got.Data) != len(asked.Data) {
		return fmt.Errorf("%w: command %#x answered %d bytes, want %d", ErrMismatch, got.Command, len(got.Data), len(asked.Data))
	}
	if got.Command == CmdFrequency {
		a, g := binary.BigEndian.Uint32(asked.Data), binary.BigEndian.Uint32(got.Data)
		if d := int64(a) - int64(g); d > 100 || d < -100 {
			return fmt.Errorf("%w: frequency %d Hz, asked %d Hz", ErrMismatch, g, a)
		}
		return nil
	}
	for i := range asked.Data {
		if asked.Data[i] != got.Data[i] {
			return fmt.Errorf("%w: command %#x answered % x, asked % x", ErrMismatch, got.Command, got.Data, asked.Data)
		}
	}
	return nil
}
