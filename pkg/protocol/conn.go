package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Errors that classify what went wrong on a connection; test with
// errors.Is.
var (
	// ErrTooLarge: a request exceeded the configured size limit.
	ErrTooLarge = errors.New("request too large")
	// ErrNoDescriptor: a descriptor was expected but the message carried
	// none.
	ErrNoDescriptor = errors.New("no file descriptor received")
	// ErrManyDescriptors: a descriptor was expected but the message
	// carried more than one (all were closed).
	ErrManyDescriptors = errors.New("more than one file descriptor received")
	// ErrTruncated: the descriptors did not fit the control buffer
	// (MSG_CTRUNC); the kernel closed those that did not fit, we closed
	// the others.
	ErrTruncated = errors.New("file descriptors truncated")
	// ErrProtocol: the peer did not follow the protocol.
	ErrProtocol = errors.New("protocol error")
)

const (
	minReadBuf = 4096
	// maxRecvFDs is how many descriptors one recvmsg can take without
	// MSG_CTRUNC; more than one is already an error, this only makes sure
	// that we see (and close) them instead of losing count.
	maxRecvFDs = 16
)

// arrivedFDs are descriptors that came with the recvmsg() chunk whose last
// byte has stream offset off. Linux hands out the descriptors of an
// SCM_RIGHTS message together with its data and ends the read right after
// that message (net/unix/af_unix.c:unix_stream_read_generic()), so the
// descriptor belongs to the last byte of the chunk.
//
// One descriptor is what the protocol expects; it is kept inline, so that
// receiving it allocates nothing. Any others go to more.
type arrivedFDs struct {
	off       int64
	n         int   // descriptors: fd, then more
	fd        int   // the first one, if n > 0
	more      []int // the rest
	truncated bool
}

func (a *arrivedFDs) add(fd int) {
	if a.n == 0 {
		a.fd = fd
	} else {
		a.more = append(a.more, fd)
	}
	a.n++
}

// closeAll closes the descriptors.
func (a *arrivedFDs) closeAll() {
	if a.n > 0 {
		unix.Close(a.fd)
	}
	closeAll(a.more)
}

// Conn is one end of a connection cache protocol stream over a UNIX-domain
// socket. Every read is a recvmsg() with room for control data: a plain
// read() that runs past a descriptor-carrying byte would make Linux discard
// the descriptor silently. Descriptors that arrive with bytes read as
// attribute text are closed at once and counted (Discarded).
//
// Output is buffered; it is flushed before every read that would block,
// before a descriptor is sent, and by Flush.
//
// A Conn is not safe for concurrent use.
type Conn struct {
	uc      *net.UnixConn
	timeout time.Duration

	rbuf []byte
	r, w int   // unread bytes are rbuf[r:w]
	base int64 // stream offset of rbuf[0]
	rerr error

	arrived   []arrivedFDs
	discarded int
	oob       []byte

	wbuf []byte

	// uc's read and write deadlines, moved lazily. See lazyDeadline.
	readDL, writeDL lazyDeadline

	// sendmsg()'s data byte and control message for SendFD, reused.
	sendByte []byte
	rights   []byte
}

// NewConn wraps uc. Each read and write must complete within timeout
// (zero: no limit). The Conn owns uc from now on; Close closes it.
func NewConn(uc *net.UnixConn, timeout time.Duration) *Conn {
	return &Conn{
		uc:      uc,
		timeout: timeout,
		rbuf:    make([]byte, minReadBuf),
		oob:     make([]byte, unix.CmsgSpace(4*maxRecvFDs)),
		readDL:  lazyDeadline{set: uc.SetReadDeadline},
		writeDL: lazyDeadline{set: uc.SetWriteDeadline},
	}
}

// UnixConn returns the underlying socket.
func (c *Conn) UnixConn() *net.UnixConn { return c.uc }

// Buffered reports how many received bytes have not been consumed yet.
func (c *Conn) Buffered() int { return c.w - c.r }

// Discarded returns how many descriptors arrived where none was expected
// (and were closed) since the last call, and resets the count.
func (c *Conn) Discarded() int {
	n := c.discarded
	c.discarded = 0
	return n
}

// Close closes the socket and every received descriptor not yet taken.
func (c *Conn) Close() error {
	for i := range c.arrived {
		c.arrived[i].closeAll()
	}
	c.arrived = nil
	return c.uc.Close()
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// fill flushes pending output, then reads at least one more byte into the
// buffer. It returns io.EOF at end of stream.
func (c *Conn) fill(limit int) error {
	if c.rerr != nil {
		return c.rerr
	}
	if len(c.wbuf) > 0 {
		if err := c.Flush(); err != nil {
			return err
		}
	}
	if c.r == c.w {
		c.base += int64(c.r)
		c.r, c.w = 0, 0
		if len(c.rbuf) > 16*minReadBuf {
			c.rbuf = make([]byte, minReadBuf) // give back a large request's memory
		}
	}
	if c.w == len(c.rbuf) {
		if c.r > 0 {
			n := copy(c.rbuf, c.rbuf[c.r:c.w])
			c.base += int64(c.r)
			c.r, c.w = 0, n
		} else {
			size := 2 * len(c.rbuf)
			if size > limit+1 {
				size = limit + 1
			}
			if size <= len(c.rbuf) {
				return ErrTooLarge
			}
			nb := make([]byte, size)
			copy(nb, c.rbuf[:c.w])
			c.rbuf = nb
		}
	}
	end := c.readDL.arm(c.timeout)
	n, oobn, flags, _, err := c.uc.ReadMsgUnix(c.rbuf[c.w:], c.oob)
	for n <= 0 && c.readDL.retry(err, end) {
		n, oobn, flags, _, err = c.uc.ReadMsgUnix(c.rbuf[c.w:], c.oob)
	}
	if n < 0 { // a failed recvmsg (a timeout, for one) reports -1
		n, oobn = 0, 0
	}
	if oobn > 0 {
		c.recordFDs(c.oob[:oobn], int64(c.w+n-1), flags&unix.MSG_CTRUNC != 0)
	}
	c.w += n
	if n > 0 {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.EOF
	}
	c.rerr = err
	return err
}

// deadlineSlack is the fraction of the timeout by which a deadline may be
// left earlier than it should be, so that a busy connection moves its
// deadlines once in a while instead of at every read and write (setting a
// deadline takes the runtime's timer locks). A read or write that hits such
// an early deadline sets the exact one and carries on, so every read and
// write still fails exactly when it has waited for the timeout, never
// earlier.
const deadlineSlack = 8

// lazyDeadline is one of uc's deadlines (read or write), moved only when
// it would move by more than timeout/deadlineSlack.
type lazyDeadline struct {
	set func(time.Time) error // uc.SetReadDeadline or uc.SetWriteDeadline
	at  time.Time             // the deadline last set (zero: none)
}

// arm starts a read or write that must end within timeout (zero: no
// limit): it returns the exact end (zero with no limit) and leaves the
// deadline at end or at most timeout/deadlineSlack earlier.
func (d *lazyDeadline) arm(timeout time.Duration) time.Time {
	if timeout <= 0 {
		return time.Time{}
	}
	end := time.Now().Add(timeout)
	if diff := end.Sub(d.at); d.at.IsZero() || diff < 0 || diff > timeout/deadlineSlack {
		d.at = end
		d.set(end)
	}
	return end
}

// retry reports whether a read or write that failed with err hit a
// deadline that arm left early, and if so sets the exact one, end, so
// that the call can be made again.
func (d *lazyDeadline) retry(err error, end time.Time) bool {
	if end.IsZero() || !d.at.Before(end) || !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	d.at = end
	d.set(end)
	return true
}

// recordFDs remembers the descriptors of one control message chunk. It
// walks the control messages in place: parsing them into slices
// (unix.ParseSocketControlMessage, unix.ParseUnixRights) would allocate
// three times per descriptor received.
func (c *Conn) recordFDs(oob []byte, lastByte int64, truncated bool) {
	a := arrivedFDs{truncated: truncated}
	for len(oob) >= unix.CmsgLen(0) {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			break
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_RIGHTS {
			for ; len(data) >= 4; data = data[4:] {
				a.add(int(int32(binary.NativeEndian.Uint32(data))))
			}
		}
		oob = rest
	}
	if a.n == 0 && !truncated {
		return
	}
	a.off = c.base + lastByte
	c.arrived = append(c.arrived, a)
}

// dropArrivedBefore closes the descriptors that came with bytes before
// stream offset off: those bytes were consumed as attribute text.
func (c *Conn) dropArrivedBefore(off int64) {
	i := 0
	for ; i < len(c.arrived) && c.arrived[i].off < off; i++ {
		c.arrived[i].closeAll()
		c.discarded += c.arrived[i].n
		if c.arrived[i].truncated {
			c.discarded++
		}
	}
	if i > 0 {
		c.shiftArrived(i)
	}
}

// readString returns the next NUL-terminated string, without its NUL, as a
// view into the read buffer that is valid until the next read. A string
// longer than limit bytes fails with ErrTooLarge. A stream that ends
// inside a string fails with io.ErrUnexpectedEOF, one that ends before it
// with io.EOF.
func (c *Conn) readString(limit int) ([]byte, error) {
	scanned := 0
	for {
		if i := bytes.IndexByte(c.rbuf[c.r+scanned:c.w], 0); i >= 0 {
			end := c.r + scanned + i
			if end-c.r > limit {
				return nil, ErrTooLarge
			}
			s := c.rbuf[c.r:end]
			c.r = end + 1
			if len(c.arrived) > 0 {
				c.dropArrivedBefore(c.base + int64(c.r))
			}
			return s, nil
		}
		scanned = c.w - c.r
		if scanned > limit {
			return nil, ErrTooLarge
		}
		if err := c.fill(max(limit, 0)); err != nil {
			if err == io.EOF && c.w > c.r {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// stringBuffered reports whether the next string is complete in the
// buffer, so that readString will not read (and so not move the buffer).
func (c *Conn) stringBuffered() bool {
	return bytes.IndexByte(c.rbuf[c.r:c.w], 0) >= 0
}

// WaitInput waits up to d for input from the peer and reports whether some
// arrived (it is then buffered). Pending output is flushed first.
func (c *Conn) WaitInput(d time.Duration) (bool, error) {
	if c.Buffered() > 0 {
		return true, nil
	}
	saved := c.timeout
	c.timeout = d
	err := c.fill(1)
	c.timeout = saved
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.rerr = nil // a quiet peer is no failure
		return false, nil
	}
	return false, err
}

// RecvFD receives one descriptor: it consumes one byte, which must have
// arrived with exactly one SCM_RIGHTS descriptor (util/unix_recv_fd.c).
// The caller owns the returned descriptor. On ErrNoDescriptor,
// ErrManyDescriptors and ErrTruncated, every descriptor that came with the
// byte has been closed; the connection remains usable.
func (c *Conn) RecvFD() (int, error) {
	if c.r == c.w {
		if err := c.fill(1); err != nil {
			return -1, err
		}
	}
	off := c.base + int64(c.r)
	c.r++
	c.dropArrivedBefore(off)
	if len(c.arrived) == 0 || c.arrived[0].off != off {
		return -1, ErrNoDescriptor
	}
	a := c.arrived[0]
	c.shiftArrived(1)
	switch {
	case a.truncated:
		a.closeAll()
		return -1, ErrTruncated
	case a.n != 1:
		a.closeAll()
		return -1, ErrManyDescriptors
	}
	return a.fd, nil
}

// shiftArrived forgets the first i records of c.arrived, keeping its
// array for the next ones.
func (c *Conn) shiftArrived(i int) {
	n := copy(c.arrived, c.arrived[i:])
	clear(c.arrived[n:])
	c.arrived = c.arrived[:n]
}

// SendFD flushes pending output and sends fd with one NUL data byte in one
// sendmsg() (util/unix_send_fd.c). The caller keeps ownership of fd.
func (c *Conn) SendFD(fd int) error {
	if err := c.Flush(); err != nil {
		return err
	}
	end := c.writeDL.arm(c.timeout)
	if c.rights == nil {
		c.sendByte = []byte{0}
		c.rights = unix.UnixRights(0)
	}
	// unix.UnixRights allocates; patch the descriptor into our copy.
	binary.NativeEndian.PutUint32(c.rights[unix.CmsgLen(0):], uint32(int32(fd)))
	n, _, err := c.uc.WriteMsgUnix(c.sendByte, c.rights, nil)
	for n <= 0 && err != nil && c.writeDL.retry(err, end) {
		n, _, err = c.uc.WriteMsgUnix(c.sendByte, c.rights, nil)
	}
	if err != nil {
		return fmt.Errorf("send file descriptor: %w", err)
	}
	return nil
}

// Flush writes pending output.
func (c *Conn) Flush() error {
	if len(c.wbuf) == 0 {
		return nil
	}
	end := c.writeDL.arm(c.timeout)
	n, err := c.uc.Write(c.wbuf)
	for err != nil && n < len(c.wbuf) && c.writeDL.retry(err, end) {
		var m int
		m, err = c.uc.Write(c.wbuf[n:])
		n += m
	}
	c.wbuf = c.wbuf[:0]
	return err
}

// WriteAttrs appends a complete attribute list (name, value pairs and the
// terminator) to the output buffer.
func (c *Conn) WriteAttrs(nameValues ...string) {
	for i := 0; i+1 < len(nameValues); i += 2 {
		c.wbuf = AppendAttr(c.wbuf, nameValues[i], nameValues[i+1])
	}
	c.wbuf = AppendEnd(c.wbuf)
}

// writeRaw appends bytes to the output buffer.
func (c *Conn) writeRaw(b []byte) { c.wbuf = append(c.wbuf, b...) }
