// prox-uringfloor: the io_uring twin of bench/NIOFloor (prox-niofloor), for issue 9 section 2.
//
// Same command line and the same behaviour: each client connection gets its own upstream
// connection on the same thread, and bytes are forwarded verbatim both ways; no HTTP parsing,
// routing, headers or pool. What changes is the I/O floor under it: one io_uring per thread
// (liburing), one acceptor that hands connections round-robin to the threads' rings (as
// ServerBootstrap hands child channels to the event loops), multishot accept, multishot receive
// into a provided-buffer ring, sends straight out of the received buffer, and one
// io_uring_enter per loop turn for every submission and completion of that turn.
//
// The hot path allocates nothing and touches no reference count: the connection table, the
// per-direction queues and the buffers are preallocated per thread and reached through unsafe
// pointers; a completion's user_data names its slot, direction and operation.
//
// Flow control: a direction whose destination is slower than its source queues received buffers
// (a linked list through the buffer ids). At `queueCap` queued buffers its multishot receive is
// cancelled, and re-armed when its queue has drained. When the shared buffer ring runs dry
// (-ENOBUFS ends a multishot receive) the direction waits for buffers to come back.
// EOF is forwarded as a half-close (shutdown(SHUT_WR) on the other socket once the queue has
// drained); the pair closes when both directions have ended, or at once on any error.
//
//   prox-uringfloor --listen 127.0.0.1:8080 --upstream 127.0.0.1:9000 --threads 1
//                   [--buffers 2048] [--buffer-size 16384] [--max-conns 16384]
import CURing
import Glibc

// MARK: - Command line (as prox-niofloor's)

func arg(_ name: String, _ fallback: String) -> String {
    let a = CommandLine.arguments
    if let i = a.firstIndex(of: name), i + 1 < a.count { return a[i + 1] }
    return fallback
}

func hostPort(_ s: String) -> (String, UInt16) {
    let parts = s.split(separator: ":")
    return (String(parts[0]), UInt16(parts[1]) ?? 0)
}

func fatal(_ what: String, _ err: Int32) -> Never {
    fputs("prox-uringfloor: \(what): \(String(cString: strerror(err)))\n", stderr)
    exit(1)
}

func socketAddress(_ host: String, _ port: UInt16) -> sockaddr_in {
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_port = port.bigEndian
    guard inet_pton(AF_INET, host, &a.sin_addr) == 1 else {
        fputs("prox-uringfloor: \(host) is not an IPv4 address\n", stderr)
        exit(2)
    }
    return a
}

let (listenHost, listenPort) = hostPort(arg("--listen", "127.0.0.1:8080"))
let (upHost, upPort) = hostPort(arg("--upstream", "127.0.0.1:9000"))
let threadCount = max(1, Int(arg("--threads", "1")) ?? 1)
// Power of two (the buffer ring's size), at most 32768 (buffer ids are 16 bits).
let bufferCount = Int32(arg("--buffers", "2048")) ?? 2048
let bufferSize = Int32(arg("--buffer-size", "16384")) ?? 16384
let maxConns = Int32(arg("--max-conns", "16384")) ?? 16384
precondition(bufferCount > 0 && bufferCount <= 32768 && bufferCount & (bufferCount - 1) == 0,
             "--buffers must be a power of two up to 32768")

// MARK: - Constants

/// Operation kinds, in the low byte of a completion's user_data.
enum Op {
    static let accept: UInt64 = 1
    static let newConn: UInt64 = 2   // a connection handed over by the acceptor (MSG_RING)
    static let handOff: UInt64 = 3   // the acceptor's side of a hand-over, seen only on failure
    static let connect: UInt64 = 4
    static let recv: UInt64 = 5
    static let send: UInt64 = 6
    static let ignore: UInt64 = 7    // cancellations: their results need no action
}

@inline(__always) func userData(_ slot: Int32, _ side: Int32, _ op: UInt64) -> UInt64 {
    UInt64(UInt32(bitPattern: slot)) << 16 | UInt64(UInt32(bitPattern: side)) << 8 | op
}

/// Direction flags.
enum DirFlag {
    static let armed: UInt32 = 1       // a multishot receive is outstanding
    static let cancelling: UInt32 = 2  // ... and a cancel for it was submitted (flow control)
    static let sending: UInt32 = 4     // a send of the queue's head buffer is outstanding
    static let eof: UInt32 = 8         // the source said EOF
    static let shut: UInt32 = 16       // EOF forwarded: shutdown(SHUT_WR) on the destination
    static let starved: UInt32 = 32    // receive ended for want of buffers; waits in `starved`
}

let queueCap: Int32 = 8
let cqeFlagMore = UInt32(IORING_CQE_F_MORE)
let cqeFlagBuffer = UInt32(IORING_CQE_F_BUFFER)
let skipSuccess = UInt8(prox_sqe_cqe_skip_success)

// MARK: - Per-thread state

/// One direction of a pair: bytes read from `src` and written to the other socket. Its queue is
/// a list of buffer ids linked through `Worker.bufNext`; the head is the one being sent.
struct Dir {
    var head: Int32 = -1
    var tail: Int32 = -1
    var count: Int32 = 0
    var flags: UInt32 = 0
}

/// A client connection and its upstream connection. `outstanding` counts operations the kernel
/// still holds for the pair; the slot and both descriptors are released when it reaches zero
/// after `closing` is set, so no completion can ever name a reused slot.
struct Conn {
    var fd: (Int32, Int32) = (-1, -1)  // (client, upstream)
    var outstanding: Int32 = 0
    var closing = false
}

struct Worker: ~Copyable {
    let index: Int32
    let ring: UnsafeMutablePointer<io_uring>
    let bufRing: UnsafeMutablePointer<io_uring_buf_ring>
    let bufBase: UnsafeMutableRawPointer
    let bufMask: Int32
    let bufNext: UnsafeMutablePointer<Int32>
    let bufOff: UnsafeMutablePointer<Int32>
    let bufLen: UnsafeMutablePointer<Int32>
    let conns: UnsafeMutablePointer<Conn>
    let dirs: UnsafeMutablePointer<Dir>
    let freeSlots: UnsafeMutablePointer<Int32>
    var freeTop: Int32
    let starved: UnsafeMutablePointer<Int32>
    var starvedCount: Int32 = 0
    var recycled: Int32 = 0     // buffers added to the ring since the last advance
    var freeBuffers: Int32      // buffers the kernel can pick from
    var nextThread = 0

    init(index: Int32) {
        self.index = index
        ring = .allocate(capacity: 1)
        ring.initialize(to: io_uring())
        var p = io_uring_params()
        // One thread submits and reaps (SINGLE_ISSUER); completions run as task work only when
        // this thread enters the kernel to wait (DEFER_TASKRUN), so a turn's completions come in
        // one batch. Fallbacks for older kernels, down to 5.19 (multishot accept, buffer rings).
        p.flags = UInt32(IORING_SETUP_CQSIZE) | UInt32(IORING_SETUP_SUBMIT_ALL)
            | UInt32(IORING_SETUP_SINGLE_ISSUER) | UInt32(IORING_SETUP_DEFER_TASKRUN)
        p.cq_entries = 16384
        var rc = io_uring_queue_init_params(4096, ring, &p)
        if rc == -EINVAL {
            p = io_uring_params()
            p.flags = UInt32(IORING_SETUP_CQSIZE) | UInt32(IORING_SETUP_SUBMIT_ALL) | UInt32(IORING_SETUP_COOP_TASKRUN)
            p.cq_entries = 16384
            rc = io_uring_queue_init_params(4096, ring, &p)
        }
        if rc < 0 { fatal("io_uring_queue_init_params", -rc) }
        _ = io_uring_register_ring_fd(ring)  // io_uring_enter without an fd lookup; optional

        // The provided-buffer ring: bufferCount buffers of bufferSize bytes, group 0.
        var mem: UnsafeMutableRawPointer?
        let ringBytes = Int(bufferCount) * MemoryLayout<io_uring_buf>.stride
        if posix_memalign(&mem, 4096, max(ringBytes, 4096)) != 0 { fatal("posix_memalign", ENOMEM) }
        bufRing = mem!.bindMemory(to: io_uring_buf_ring.self, capacity: 1)
        io_uring_buf_ring_init(bufRing)
        var reg = io_uring_buf_reg()
        reg.ring_addr = UInt64(UInt(bitPattern: mem))
        reg.ring_entries = UInt32(bufferCount)
        reg.bgid = 0
        rc = io_uring_register_buf_ring(ring, &reg, 0)
        if rc < 0 { fatal("io_uring_register_buf_ring (needs Linux 5.19 or later)", -rc) }
        var base: UnsafeMutableRawPointer?
        if posix_memalign(&base, 4096, Int(bufferCount) * Int(bufferSize)) != 0 { fatal("posix_memalign", ENOMEM) }
        bufBase = base!
        bufMask = io_uring_buf_ring_mask(UInt32(bufferCount))
        for bid in 0..<bufferCount {
            io_uring_buf_ring_add(bufRing, bufBase + Int(bid) * Int(bufferSize), UInt32(bufferSize), UInt16(bid), bufMask, bid)
        }
        io_uring_buf_ring_advance(bufRing, bufferCount)
        freeBuffers = bufferCount

        bufNext = .allocate(capacity: Int(bufferCount)); bufNext.initialize(repeating: -1, count: Int(bufferCount))
        bufOff = .allocate(capacity: Int(bufferCount)); bufOff.initialize(repeating: 0, count: Int(bufferCount))
        bufLen = .allocate(capacity: Int(bufferCount)); bufLen.initialize(repeating: 0, count: Int(bufferCount))
        conns = .allocate(capacity: Int(maxConns)); conns.initialize(repeating: Conn(), count: Int(maxConns))
        dirs = .allocate(capacity: 2 * Int(maxConns)); dirs.initialize(repeating: Dir(), count: 2 * Int(maxConns))
        freeSlots = .allocate(capacity: Int(maxConns))
        for i in 0..<maxConns { freeSlots[Int(i)] = maxConns - 1 - i }
        freeTop = maxConns
        starved = .allocate(capacity: 2 * Int(maxConns))
    }

    var ringFd: Int32 { ring.pointee.ring_fd }

    // MARK: Submission

    /// The next SQE; when the submission queue is full, what is queued goes to the kernel first.
    @inline(__always) mutating func sqe() -> UnsafeMutablePointer<io_uring_sqe> {
        while true {
            if let s = io_uring_get_sqe(ring) { return s }
            flushRecycled()
            _ = io_uring_submit(ring)
        }
    }

    @inline(__always) mutating func recycle(_ bid: Int32) {
        io_uring_buf_ring_add(bufRing, bufBase + Int(bid) * Int(bufferSize), UInt32(bufferSize), UInt16(bid), bufMask, recycled)
        recycled += 1
    }

    @inline(__always) mutating func flushRecycled() {
        if recycled > 0 {
            io_uring_buf_ring_advance(bufRing, recycled)
            freeBuffers += recycled
            recycled = 0
        }
    }

    mutating func armAccept(_ listenFd: Int32) {
        let s = sqe()
        io_uring_prep_multishot_accept(s, listenFd, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
        io_uring_sqe_set_data64(s, userData(0, 0, Op.accept))
    }

    @inline(__always) mutating func armRecv(_ slot: Int32, _ side: Int32) {
        let c = conns + Int(slot)
        let src = side == 0 ? c.pointee.fd.0 : c.pointee.fd.1
        prox_prep_recv_multishot(sqe(), src, 0, userData(slot, side, Op.recv))
        dirs[Int(slot * 2 + side)].flags |= DirFlag.armed
        c.pointee.outstanding += 1
    }

    /// Sends what is left of the direction's head buffer.
    @inline(__always) mutating func sendHead(_ slot: Int32, _ side: Int32) {
        let c = conns + Int(slot)
        let d = dirs + Int(slot * 2 + side)
        let bid = d.pointee.head
        let dst = side == 0 ? c.pointee.fd.1 : c.pointee.fd.0
        let s = sqe()
        io_uring_prep_send(s, dst, bufBase + Int(bid) * Int(bufferSize) + Int(bufOff[Int(bid)]),
                           Int(bufLen[Int(bid)]), Int32(MSG_NOSIGNAL))
        io_uring_sqe_set_data64(s, userData(slot, side, Op.send))
        d.pointee.flags |= DirFlag.sending
        c.pointee.outstanding += 1
    }

    // MARK: Connections

    mutating func startConn(_ clientFd: Int32) {
        guard freeTop > 0 else { close(clientFd); return }
        let up = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if up < 0 { close(clientFd); return }
        var one: Int32 = 1
        setsockopt(clientFd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(up, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        freeTop -= 1
        let slot = freeSlots[Int(freeTop)]
        conns[Int(slot)] = Conn(fd: (clientFd, up), outstanding: 1, closing: false)
        dirs[Int(slot * 2)] = Dir()
        dirs[Int(slot * 2 + 1)] = Dir()
        let s = sqe()
        io_uring_prep_connect(s, up, upstreamAddress, socklen_t(MemoryLayout<sockaddr_in>.size))
        io_uring_sqe_set_data64(s, userData(slot, 0, Op.connect))
    }

    /// Closes the pair: queued buffers go back to the ring (except one the kernel is sending
    /// from), and everything outstanding on either socket is cancelled; the slot is released
    /// when the last of those completions has come back.
    mutating func closePair(_ slot: Int32) {
        let c = conns + Int(slot)
        if c.pointee.closing { return }
        c.pointee.closing = true
        for side in Int32(0)...1 {
            let d = dirs + Int(slot * 2 + side)
            var bid = d.pointee.head
            let keep = d.pointee.flags & DirFlag.sending != 0 ? bid : -1
            while bid >= 0 {
                let next = bufNext[Int(bid)]
                if bid != keep { recycle(bid) }
                bid = next
            }
            d.pointee.head = keep; d.pointee.tail = keep; d.pointee.count = keep >= 0 ? 1 : 0
            if keep >= 0 { bufNext[Int(keep)] = -1 }
            d.pointee.flags &= ~DirFlag.starved
        }
        if c.pointee.outstanding > 0 {
            cancelAll(c.pointee.fd.0)
            cancelAll(c.pointee.fd.1)
        }
        releaseIfDone(slot)
    }

    mutating func cancelAll(_ fd: Int32) {
        let s = sqe()
        io_uring_prep_cancel_fd(s, fd, UInt32(IORING_ASYNC_CANCEL_ALL))
        io_uring_sqe_set_data64(s, userData(0, 0, Op.ignore))
        s.pointee.flags |= skipSuccess
    }

    @inline(__always) mutating func releaseIfDone(_ slot: Int32) {
        let c = conns + Int(slot)
        guard c.pointee.closing, c.pointee.outstanding == 0 else { return }
        close(c.pointee.fd.0)
        close(c.pointee.fd.1)
        c.pointee.fd = (-1, -1)
        freeSlots[Int(freeTop)] = slot
        freeTop += 1
    }

    /// The source has ended and everything it sent is out: forward the EOF. Both ways ended:
    /// close the pair.
    mutating func forwardEOF(_ slot: Int32, _ side: Int32) {
        let c = conns + Int(slot)
        let d = dirs + Int(slot * 2 + side)
        shutdown(side == 0 ? c.pointee.fd.1 : c.pointee.fd.0, Int32(SHUT_WR))
        d.pointee.flags |= DirFlag.shut
        if dirs[Int(slot * 2 + (1 - side))].flags & DirFlag.shut != 0 { closePair(slot) }
    }

    /// Re-arms a direction's receive once its queue has drained (flow control) and buffers are
    /// there to receive into.
    @inline(__always) mutating func rearmIfIdle(_ slot: Int32, _ side: Int32) {
        let f = dirs[Int(slot * 2 + side)].flags
        if f & (DirFlag.armed | DirFlag.eof | DirFlag.starved | DirFlag.sending) == 0,
           dirs[Int(slot * 2 + side)].count == 0, !conns[Int(slot)].closing {
            armRecv(slot, side)
        }
    }

    // MARK: Completions

    @inline(__always) mutating func complete(_ data: UInt64, _ res: Int32, _ flags: UInt32) {
        let op = data & 0xff
        let side = Int32(truncatingIfNeeded: (data >> 8) & 0xff)
        let slot = Int32(truncatingIfNeeded: data >> 16)
        switch op {
        case Op.recv: onRecv(slot, side, res, flags)
        case Op.send: onSend(slot, side, res)
        case Op.accept: onAccept(res, flags)
        case Op.newConn: if res >= 0 { startConn(res) }
        case Op.handOff: close(slot)  // MSG_RING failed: `slot` carries the descriptor
        case Op.connect: onConnect(slot, res)
        default: break
        }
    }

    @inline(__always) mutating func onRecv(_ slot: Int32, _ side: Int32, _ res: Int32, _ flags: UInt32) {
        let c = conns + Int(slot)
        let d = dirs + Int(slot * 2 + side)
        if flags & cqeFlagMore == 0 {
            d.pointee.flags &= ~(DirFlag.armed | DirFlag.cancelling)
            c.pointee.outstanding -= 1
        }
        if res > 0 {
            let bid = Int32(flags >> 16)
            freeBuffers -= 1
            if c.pointee.closing { recycle(bid); releaseIfDone(slot); return }
            bufOff[Int(bid)] = 0
            bufLen[Int(bid)] = res
            bufNext[Int(bid)] = -1
            if d.pointee.tail >= 0 { bufNext[Int(d.pointee.tail)] = bid } else { d.pointee.head = bid }
            d.pointee.tail = bid
            d.pointee.count += 1
            if d.pointee.flags & DirFlag.sending == 0 {
                sendHead(slot, side)
            } else if d.pointee.count >= queueCap,
                      d.pointee.flags & (DirFlag.armed | DirFlag.cancelling) == DirFlag.armed {
                // The destination is slower than the source: stop receiving until it catches up.
                let s = sqe()
                io_uring_prep_cancel64(s, userData(slot, side, Op.recv), 0)
                io_uring_sqe_set_data64(s, userData(slot, side, Op.ignore))
                s.pointee.flags |= skipSuccess
                d.pointee.flags |= DirFlag.cancelling
            }
            if d.pointee.flags & DirFlag.armed == 0 { rearmIfIdle(slot, side) }
            return
        }
        if c.pointee.closing { releaseIfDone(slot); return }
        if res == 0 {
            d.pointee.flags |= DirFlag.eof
            if d.pointee.flags & DirFlag.sending == 0 { forwardEOF(slot, side) }
        } else if res == -ENOBUFS {
            d.pointee.flags |= DirFlag.starved
            starved[Int(starvedCount)] = slot * 2 + side
            starvedCount += 1
        } else if res == -ECANCELED {
            rearmIfIdle(slot, side)  // flow control's cancel: re-armed here or when the queue drains
        } else {
            closePair(slot)
        }
    }

    @inline(__always) mutating func onSend(_ slot: Int32, _ side: Int32, _ res: Int32) {
        let c = conns + Int(slot)
        let d = dirs + Int(slot * 2 + side)
        c.pointee.outstanding -= 1
        d.pointee.flags &= ~DirFlag.sending
        let bid = d.pointee.head
        if c.pointee.closing {
            recycle(bid)
            d.pointee.head = -1; d.pointee.tail = -1; d.pointee.count = 0
            releaseIfDone(slot)
            return
        }
        if res < 0 { closePair(slot); return }
        bufLen[Int(bid)] -= res
        if bufLen[Int(bid)] > 0 {
            bufOff[Int(bid)] += res  // a short send: the rest of the buffer next
            sendHead(slot, side)
            return
        }
        d.pointee.head = bufNext[Int(bid)]
        if d.pointee.head < 0 { d.pointee.tail = -1 }
        d.pointee.count -= 1
        recycle(bid)
        if d.pointee.head >= 0 {
            sendHead(slot, side)
        } else if d.pointee.flags & DirFlag.eof != 0 {
            forwardEOF(slot, side)
        } else {
            rearmIfIdle(slot, side)
        }
    }

    mutating func onConnect(_ slot: Int32, _ res: Int32) {
        let c = conns + Int(slot)
        c.pointee.outstanding -= 1
        if c.pointee.closing { releaseIfDone(slot); return }
        if res < 0 { closePair(slot); return }
        armRecv(slot, 0)
        armRecv(slot, 1)
    }

    mutating func onAccept(_ res: Int32, _ flags: UInt32) {
        if flags & cqeFlagMore == 0 { armAccept(listenSocket) }
        if res < 0 { return }
        // Round-robin over the threads, as ServerBootstrap spreads child channels over its loops.
        let target = nextThread
        nextThread = nextThread + 1 == threadCount ? 0 : nextThread + 1
        if target == Int(index) { startConn(res); return }
        let s = sqe()
        io_uring_prep_msg_ring(s, ringFds[target], UInt32(res), userData(0, 0, Op.newConn), 0)
        io_uring_sqe_set_data64(s, userData(res, 0, Op.handOff))
        s.pointee.flags |= skipSuccess
    }

    /// Buffers came back: give starved directions their receive again.
    mutating func feedStarved() {
        guard starvedCount > 0, freeBuffers >= bufferCount / 8 else { return }
        while starvedCount > 0 {
            starvedCount -= 1
            let e = starved[Int(starvedCount)]
            let d = dirs + Int(e)
            if d.pointee.flags & DirFlag.starved == 0 { continue }  // closed (and maybe reused) since
            d.pointee.flags &= ~DirFlag.starved
            rearmIfIdle(e >> 1, e & 1)
        }
    }

    // MARK: The loop

    mutating func run() -> Never {
        if index == 0 { armAccept(listenSocket) }
        while true {
            flushRecycled()
            feedStarved()
            let rc = io_uring_submit_and_wait(ring, 1)
            if rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY { fatal("io_uring_submit_and_wait", -rc) }
            let ready = io_uring_cq_ready(ring)
            let head = prox_cq_head(ring)
            var i: UInt32 = 0
            while i < ready {
                let cqe = prox_cqe_at(ring, head &+ i)!
                complete(cqe.pointee.user_data, cqe.pointee.res, cqe.pointee.flags)
                i += 1
            }
            io_uring_cq_advance(ring, ready)
        }
    }
}

// MARK: - Start-up

/// The kernel reads the address when the connect is submitted, after `startConn` returned: it
/// lives in memory of its own for the process's lifetime.
let upstreamAddress: UnsafeMutablePointer<sockaddr> = {
    let p = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<sockaddr_in>.size, alignment: 8)
    p.storeBytes(of: socketAddress(upHost, upPort), as: sockaddr_in.self)
    return p.bindMemory(to: sockaddr.self, capacity: 1)
}()
let listenSocket: Int32 = {
    var addr = socketAddress(listenHost, listenPort)
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    if rc != 0 { fatal("bind \(listenHost):\(listenPort)", errno) }
    if listen(fd, 4096) != 0 { fatal("listen", errno) }
    return fd
}()
signal(SIGPIPE, SIG_IGN)

/// Every thread's ring descriptor, for the acceptor's MSG_RING hand-over; written before the
/// barrier, read after it.
let ringFds = UnsafeMutablePointer<Int32>.allocate(capacity: threadCount)
var barrier = pthread_barrier_t()
pthread_barrier_init(&barrier, nil, UInt32(threadCount))

func workerMain(_ index: Int) -> Never {
    // Each ring is made on its own thread: with SINGLE_ISSUER the creating thread is the only
    // one allowed to submit.
    var worker = Worker(index: Int32(index))
    ringFds[index] = worker.ringFd
    pthread_barrier_wait(&barrier)
    worker.run()
}

var threads: [pthread_t] = []
for i in 1..<threadCount {
    var t = pthread_t()
    let rc = pthread_create(&t, nil, { arg in
        workerMain(Int(bitPattern: arg) - 1)
    }, UnsafeMutableRawPointer(bitPattern: i + 1))
    if rc != 0 { fatal("pthread_create", rc) }
    threads.append(t)
}
print("prox-uringfloor on \(listenHost):\(listenPort) -> \(upHost):\(upPort), \(threadCount) ring(s)")
fflush(stdout)
workerMain(0)
