// Package radio is Lifeline's LoRa link: over-the-air frames and their
// fragments, the managed flood that relays them, and the scheduler that
// sends them by priority within the duty cycle. Its cores are pure state
// machines; the serial drivers (radio/rnode) and the simulated air
// (radio/air) sit beside them, the arithmetic in radio/lora.
package radio
