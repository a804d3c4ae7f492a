module lifeline/firmware-bridge/boards

go 1.26.8

require (
	lifeline v0.0.0
	tinygo.org/x/drivers v0.37.0
)

require (
	github.com/google/shlex v0.0.0-20191202100458-e7afc7fbc510 // indirect
	github.com/tarm/serial v0.0.0-20180830185346-98f6abe2eb07 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace lifeline => ../..
