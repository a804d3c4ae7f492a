package api

// SetMaxChannelNames gives s an empty channel-name table of n names, so a
// test can fill it without thousands of requests. Call it before s serves.
func SetMaxChannelNames(s *Server, n int) { s.names = newChannelNames(n) }
