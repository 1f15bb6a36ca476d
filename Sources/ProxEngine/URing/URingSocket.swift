#if os(Linux)
import CProxURing
import Glibc
import NIOConcurrencyHelpers
import NIOCore
import ProxCore

/// An object with operations in flight on a worker's ring. Each operation's `user_data` is the
/// object's address with a 3-bit tag. While any operation is in flight the object holds one
/// reference to itself, so it lives as long as the kernel may still write into its buffers: one
/// retain per busy period, not one per operation (a keep-alive socket always has a receive in
/// flight, and re-arms it while handling the last one's completion).
class URingTarget {
    /// Operations submitted whose last completion has not come.
    final var opsInFlight = 0
    private final var holdsSelf = false

    /// One completion of an operation submitted with `tag`. `opsInFlight` already counts the
    /// operation out when this was its last completion.
    func complete(tag: UInt64, result: Int32, flags: UInt32) {}

    /// The `user_data` for an operation of this object with `tag`, counted in flight.
    @inline(__always)
    final func submitting(_ tag: UInt64) -> UInt64 {
        opsInFlight += 1
        if !holdsSelf {
            holdsSelf = true
            _ = Unmanaged.passRetained(self)
        }
        return userData(tag)
    }

    /// The `user_data` an operation of this object with `tag` was submitted with (to cancel it).
    @inline(__always)
    final func userData(_ tag: UInt64) -> UInt64 {
        UInt64(UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque())) | tag
    }

    /// Hands a completion to its object. `user_data` 0 marks an operation nobody waits for (a
    /// cancel). A multishot operation stays in flight while the kernel says more will come.
    @inline(__always)
    static func deliver(_ c: URingCompletion) {
        let bits = c.userData & ~UInt64(7)
        guard bits != 0, let p = UnsafeRawPointer(bitPattern: UInt(bits)) else { return }
        let object = Unmanaged<URingTarget>.fromOpaque(p)
        // The self-reference keeps the object alive through `complete`: no retain for the call.
        let idle = object._withUnsafeGuaranteedRef { t -> Bool in
            if c.flags & UInt32(IORING_CQE_F_MORE) == 0 { t.opsInFlight -= 1 }
            t.complete(tag: c.userData & 7, result: c.result, flags: c.flags)
            guard t.opsInFlight == 0, t.holdsSelf else { return false }
            t.holdsSelf = false
            return true
        }
        if idle { object.release() }
    }
}

/// What a socket tells the connection it carries (`ClientConnectionHandler`, `UpstreamConnection`).
protocol URingSocketDelegate: AnyObject {
    /// Bytes received; `socketReadComplete` follows.
    func socketReceived(_ data: consuming ByteBuffer)
    func socketReadComplete()
    /// The socket could read again: the delegate calls `read()` unless it holds reading back.
    func socketReadRequested()
    func socketWritabilityChanged(_ writable: Bool)
    /// The connection closed (peer, error, or `close`), once.
    func socketClosed()
}

/// One TCP connection on an io_uring worker: the `ConnectionIO` of the io_uring engine. Receives
/// go into one reusable buffer, one receive in flight at a time; writes queue until `flush` and
/// go as one send (or a gathering `sendmsg`) per loop turn, resent from where a short send
/// stopped. Owned by its worker's thread; every call happens there.
final class URingSocket: URingTarget, ConnectionIO, @unchecked Sendable {
    static let recvTag: UInt64 = 1
    static let sendTag: UInt64 = 2
    static let connectTag: UInt64 = 3
    /// The update that empties the socket's fixed-file slot.
    static let slotTag: UInt64 = 5
    /// Queued bytes above which the socket reports itself unwritable, and below which writable
    /// again (SwiftNIO's defaults).
    static let highWater = 64 * 1024
    static let lowWater = 32 * 1024
    /// The receive buffer starts at this size and doubles, up to `maxReceive`, while reads fill it.
    static let firstReceive = 2048
    static let maxReceive = 64 * 1024
    /// Buffers gathered into one `sendmsg`.
    static let maxIovecs = 64

    let fd: Int32
    unowned(unsafe) let worker: URingWorker
    /// Cleared once the delegate has been told the socket closed: the socket and its delegate
    /// hold each other only while the connection is open.
    var delegate: (any URingSocketDelegate)?
    /// Called once, when the descriptor has been closed (connection counting).
    var onClosed: (() -> Void)?

    private var receiveBuffer = ByteBuffer()
    private var receiveSize = URingSocket.firstReceive
    private var receiving = false
    /// Whether the next receive should wait for data before trying (`IORING_RECVSEND_POLL_FIRST`).
    /// A receive armed after a request or response was handled nearly always finds the socket
    /// empty, and trying first costs a whole failed `tcp_recvmsg` before the poll is armed. Off
    /// when the last receive said more was waiting (`IORING_CQE_F_SOCK_NONEMPTY`) or filled the
    /// buffer, and for a socket's first receive (an accepted client has usually sent already).
    private var receiveWaitsFirst = false
    /// Reading stays on (another receive after each) until `setReading(false)`.
    private var reading = true
    // The multishot receive (`URingWorker.receiveRing`).
    /// Set by `read()`: whether the connection asked for more after a delivery.
    private var readAsked = false
    /// Bytes copied in this batch of completions wait in `receiveBuffer` for `deliverReceived`.
    private var pendingDelivery = false
    /// The receive is being cancelled (reading held back); `rearmAfterCancel`: `read()` was
    /// called meanwhile.
    private var cancelling = false
    private var rearmAfterCancel = false

    /// Written, not yet handed to the kernel.
    private var queued: [ByteBuffer] = []
    /// Handed to the kernel by the send in flight.
    private var sending: [ByteBuffer] = []
    private var sendInFlight = false
    private var unsentBytes = 0
    private(set) var isWritable = true
    private var message: UnsafeMutablePointer<msghdr>?
    private var iovecs: UnsafeMutablePointer<iovec>?

    private(set) var isClosed = false
    private var closeWhenSent = false
    private var descriptorClosed = false
    /// The socket's fixed-file slot (`URingWorker.takeSlot`), or -1: its operations then name
    /// its descriptor.
    private var slot: Int32 = -1
    private var slotEmptying = false
    /// Whether the socket's operations name a fixed-file slot (tests).
    var usesFixedSlot: Bool { slot >= 0 }
    /// The capacity of the buffer the socket receives into (tests).
    var receiveCapacity: Int { receiveBuffer.capacity }

    // Connecting (upstream sockets).
    private var connectPromise: EventLoopPromise<URingSocket>?
    private var connectTimer: Scheduled<Void>?
    private var connectTimedOut = false
    private var address = sockaddr_storage()

    init(fd: Int32, worker: URingWorker) {
        self.fd = fd
        self.worker = worker
    }

    deinit {
        if !descriptorClosed { Glibc.close(fd) }
        message?.deallocate()
        iovecs?.deallocate()
    }

    var eventLoop: any EventLoop { worker }

    /// Puts the socket in a free fixed-file slot, if there is one. Called just before the
    /// socket's first operation is prepared: the update is linked to it, so the operation runs
    /// after the slot holds the socket (and fails, closing the connection, if it could not).
    func takeFixedSlot() {
        guard slot < 0, let s = worker.takeSlot() else { return }
        worker.slotValues[Int(s)] = fd
        let sqe = worker.sqe()
        prox_prep_files_update(sqe, worker.slotValues + Int(s), s, 0)
        prox_sqe_link(sqe)
        slot = s
    }

    // MARK: reading

    func read() {
        guard !isClosed else { return }
        readAsked = true
        if receiving {
            // A multishot receive being cancelled (reading was held back): armed again when
            // its last completion comes.
            if cancelling { rearmAfterCancel = true }
            return
        }
        if let ring = worker.receiveRing {
            let sqe = worker.sqe()
            prox_prep_recv_multishot(sqe, fd, ring.pointee.group, submitting(Self.recvTag))
            if slot >= 0 { prox_sqe_fixed_file(sqe, slot) }
            receiving = true
            return
        }
        prepareReceiveBuffer(minimumCapacity: receiveSize)
        let (base, count) = receiveBuffer.withUnsafeMutableWritableBytes { ($0.baseAddress!, $0.count) }
        let sqe = worker.sqe()
        prox_prep_recv(sqe, fd, base, UInt32(count), 0, receiveWaitsFirst ? 1 : 0, submitting(Self.recvTag))
        if slot >= 0 { prox_sqe_fixed_file(sqe, slot) }
        receiving = true
    }

    /// Unique, empty storage to receive into: the buffer's own memory again when the connection
    /// let go of the last bytes; when it still holds them (a request's slices), the buffer goes
    /// to the worker's ring and one that its holders let go of comes back, or new memory.
    @inline(__always)
    private func prepareReceiveBuffer(minimumCapacity: Int) {
        if receiveBuffer.modifyIfUniquelyOwned({ $0.clear(minimumCapacity: minimumCapacity) }) == nil {
            let held = receiveBuffer
            receiveBuffer = worker.receiveBuffers.take() ?? ByteBufferAllocator().buffer(capacity: minimumCapacity)
            worker.receiveBuffers.give(held)
            receiveBuffer.clear(minimumCapacity: minimumCapacity)
        }
    }

    func setReading(_ on: Bool) {
        reading = on
        if on { read() } else { stopMultishot() }
    }

    /// Reading is held back: a multishot receive would go on receiving, so it is cancelled
    /// (what it receives before the cancel lands is still handed on, as SwiftNIO hands on a
    /// read already under way).
    private func stopMultishot() {
        guard receiving, !cancelling, worker.receiveRing != nil, !isClosed else { return }
        cancelling = true
        rearmAfterCancel = false
        prox_prep_cancel(worker.sqe(), userData(Self.recvTag), 0)
    }

    private func received(_ result: Int32) {
        receiving = false
        if isClosed { return }
        guard result > 0 else {
            // 0: the peer closed its side (a half-close ends the connection, as SwiftNIO does by
            // default); < 0: an error such as a reset.
            if result == -EINTR || result == -EAGAIN { read(); return }
            close()
            return
        }
        let n = Int(result)
        if n == receiveBuffer.writableBytes {
            receiveWaitsFirst = false
            if receiveSize < Self.maxReceive { receiveSize *= 2 }
        }
        receiveBuffer.moveWriterIndex(forwardBy: n)
        guard let d = delegate else { return }
        d.socketReceived(receiveBuffer)
        d.socketReadComplete()
        if reading && !isClosed { d.socketReadRequested() }
    }

    /// A completion of the multishot receive: bytes in one of the worker's ring buffers (copied
    /// into `receiveBuffer`, the ring buffer given back at once, and handed on when this batch
    /// of completions is collected), or its end.
    private func receivedMultishot(_ result: Int32, flags: UInt32) {
        var wasCancelling = false
        if flags & UInt32(IORING_CQE_F_MORE) == 0 {
            // Its last completion, however it ended: a cancel under way is over too.
            receiving = false
            wasCancelling = cancelling
            cancelling = false
        }
        if result > 0, flags & UInt32(IORING_CQE_F_BUFFER) != 0, let ring = worker.receiveRing {
            let bid = flags >> UInt32(IORING_CQE_BUFFER_SHIFT)
            if !isClosed {
                let n = Int(result)
                if !pendingDelivery {
                    // One batch can bring hundreds of KiB (the kernel posts a completion per ring
                    // buffer while data is waiting): a buffer grown past `maxReceive` goes, so a
                    // connection does not hold it for the rest of its life.
                    if receiveBuffer.capacity > Self.maxReceive { receiveBuffer = ByteBuffer() }
                    prepareReceiveBuffer(minimumCapacity: max(n, Self.firstReceive))
                    pendingDelivery = true
                    worker.deliverLater(self)
                }
                receiveBuffer.appendBytes(UnsafeRawBufferPointer(start: prox_buf_ring_buffer(ring, bid), count: n))
            }
            prox_buf_ring_recycle(ring, bid)
            // Ended with bytes (the kernel stopped it): armed again after the delivery.
            return
        }
        if isClosed || receiving { return }
        switch result {
        case -ENOBUFS, -EINTR, -EAGAIN:
            // The ring ran dry in a burst: its buffers are back by the next submit.
            if !pendingDelivery && reading { read() }
        case -ECANCELED where wasCancelling:
            if rearmAfterCancel && reading && !pendingDelivery { read() }
        default:
            // 0: the peer closed its side; < 0: an error such as a reset. What came before it
            // is handed on first.
            if pendingDelivery { deliverReceived() }
            close()
        }
    }

    /// Hands on what the multishot receive got in the last batch of completions (called by the
    /// worker once the batch is collected), then keeps the receive armed if the connection
    /// asks for more, or cancels it if the connection holds reading back.
    func deliverReceived() {
        guard pendingDelivery else { return }
        pendingDelivery = false
        guard !isClosed, let d = delegate else { return }
        // Any `read()` from here on counts, not only the answer to `socketReadRequested`: the
        // bytes may hand the socket to a new delegate that starts reading (a WebSocket relay).
        readAsked = false
        d.socketReceived(receiveBuffer)
        d.socketReadComplete()
        guard !isClosed else { return }
        if reading { d.socketReadRequested() }
        if isClosed { return }
        if !readAsked || !reading {
            stopMultishot()
        } else if !receiving {
            read()
        }
    }

    // MARK: writing

    func send(_ buffer: ByteBuffer) {
        let n = buffer.readableBytes
        guard n > 0, !isClosed else { return }
        queued.append(buffer)
        unsentBytes += n
        if isWritable && unsentBytes > Self.highWater {
            isWritable = false
            delegate?.socketWritabilityChanged(false)
        }
    }

    func flush() {
        if !sendInFlight && !queued.isEmpty && !isClosed { submitSend() }
    }

    func sendAndFlush(_ buffer: ByteBuffer) {
        send(buffer)
        flush()
    }

    private func submitSend() {
        swap(&queued, &sending)
        let userData = submitting(Self.sendTag)
        if sending.count == 1 {
            let (base, count) = sending[0].withUnsafeReadableBytes { ($0.baseAddress!, $0.count) }
            let sqe = worker.sqe()
            prox_prep_send(sqe, fd, base, UInt32(count), Int32(MSG_NOSIGNAL), userData)
            if slot >= 0 { prox_sqe_fixed_file(sqe, slot) }
        } else {
            if message == nil {
                message = .allocate(capacity: 1)
                iovecs = .allocate(capacity: Self.maxIovecs)
            }
            let count = min(sending.count, Self.maxIovecs)
            for i in 0..<count {
                let (base, len) = sending[i].withUnsafeReadableBytes { ($0.baseAddress!, $0.count) }
                iovecs![i] = iovec(iov_base: UnsafeMutableRawPointer(mutating: base), iov_len: len)
            }
            message!.pointee = msghdr()
            message!.pointee.msg_iov = iovecs
            message!.pointee.msg_iovlen = count
            let sqe = worker.sqe()
            prox_prep_sendmsg(sqe, fd, message, Int32(MSG_NOSIGNAL), userData)
            if slot >= 0 { prox_sqe_fixed_file(sqe, slot) }
        }
        sendInFlight = true
    }

    private func sent(_ result: Int32) {
        sendInFlight = false
        if isClosed { return }
        guard result >= 0 else {
            if result == -EINTR || result == -EAGAIN { resubmitUnsent(); return }
            close()
            return
        }
        var n = Int(result)
        unsentBytes -= n
        var done = 0
        while n > 0 && done < sending.count {
            let r = sending[done].readableBytes
            if n >= r {
                n -= r
                done += 1
            } else {
                sending[done].moveReaderIndex(forwardBy: n)
                n = 0
            }
        }
        if done == sending.count {
            sending.removeAllKeepingStorage()
        } else {
            sending.removeFirst(done)
        }
        resubmitUnsent()
        if !isWritable && unsentBytes < Self.lowWater {
            isWritable = true
            delegate?.socketWritabilityChanged(true)
        }
        if closeWhenSent && !sendInFlight && queued.isEmpty { close() }
    }

    /// What a short send left goes first, then what was queued meanwhile.
    private func resubmitUnsent() {
        if !sending.isEmpty {
            sending.append(contentsOf: queued)
            queued.removeAllKeepingStorage()
            swap(&sending, &queued)
        }
        if !queued.isEmpty { submitSend() }
    }

    // MARK: closing

    func closeAfterSending() {
        if isClosed { return }
        if !sendInFlight && queued.isEmpty {
            close()
        } else {
            closeWhenSent = true
            flush()
        }
    }

    /// Closes now: what is queued is dropped, operations in flight are cancelled, and the
    /// descriptor closes when the last of them has completed. The delegate hears of it at once.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        queued.removeAll()
        if receiving { prox_prep_cancel(worker.sqe(), userData(Self.recvTag), 0) }
        if sendInFlight { prox_prep_cancel(worker.sqe(), userData(Self.sendTag), 0) }
        if connectPromise != nil { prox_prep_cancel(worker.sqe(), userData(Self.connectTag), 0) }
        closeDescriptorIfIdle()
        if let d = delegate {
            delegate = nil
            d.socketClosed()
        }
    }

    private func closeDescriptorIfIdle() {
        guard isClosed, opsInFlight == 0, !descriptorClosed else { return }
        if slot >= 0 {
            // The slot holds the socket open: it is emptied first, and given back (and the
            // descriptor closed) when the kernel has done so.
            if !slotEmptying {
                slotEmptying = true
                worker.slotValues[Int(slot)] = -1
                prox_prep_files_update(worker.sqe(), worker.slotValues + Int(slot), slot, submitting(Self.slotTag))
            }
            return
        }
        descriptorClosed = true
        sending.removeAll()
        // The next connection on this worker may receive into it.
        worker.receiveBuffers.give(receiveBuffer)
        receiveBuffer = ByteBuffer()
        Glibc.close(fd)
        if let c = onClosed {
            onClosed = nil
            c()
        }
    }

    // MARK: completions

    override func complete(tag: UInt64, result: Int32, flags: UInt32) {
        switch tag {
        case Self.recvTag:
            if worker.receiveRing != nil {
                receivedMultishot(result, flags: flags)
            } else {
                receiveWaitsFirst = flags & UInt32(IORING_CQE_F_SOCK_NONEMPTY) == 0
                received(result)
            }
        case Self.sendTag: sent(result)
        case Self.connectTag: connectDone(result)
        case Self.slotTag:
            // A slot the kernel could not empty (it cannot happen short of a kernel bug) is not
            // reused: the next socket would find it taken.
            if result >= 0 { worker.giveSlot(slot) }
            slot = -1
        default: break
        }
        if isClosed { closeDescriptorIfIdle() }
    }

    // MARK: connecting

    /// Opens a TCP connection to `address` on `worker` (called on its thread), failing after
    /// `timeout` with `UpstreamFailure.connectTimeout`.
    static func connect(on worker: URingWorker, to address: SocketAddress, timeout: TimeAmount, describe: String)
        -> EventLoopFuture<URingSocket> {
        let family: Int32
        switch address {
        case .v4: family = AF_INET
        case .v6: family = AF_INET6
        default: return worker.makeFailedFuture(UpstreamFailure.connectFailed("\(describe): not an IP address"))
        }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            return worker.makeFailedFuture(UpstreamFailure.connectFailed("\(describe): socket: \(String(cString: strerror(errno)))"))
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let s = URingSocket(fd: fd, worker: worker)
        let promise = worker.makePromise(of: URingSocket.self)
        s.connectPromise = promise
        let length = address.withSockAddr { addr, len -> Int in
            withUnsafeMutableBytes(of: &s.address) { $0.copyMemory(from: UnsafeRawBufferPointer(start: addr, count: len)) }
            return len
        }
        withUnsafePointer(to: &s.address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                s.takeFixedSlot()
                let sqe = worker.sqe()
                prox_prep_connect(sqe, fd, $0, socklen_t(length), s.submitting(connectTag))
                if s.slot >= 0 { prox_sqe_fixed_file(sqe, s.slot) }
            }
        }
        s.connectTimer = worker.assumeIsolatedUnsafeUnchecked().scheduleTask(in: timeout) {
            guard s.connectPromise != nil else { return }
            s.connectTimedOut = true
            prox_prep_cancel(worker.sqe(), s.userData(connectTag), 0)
        }
        s.describe = describe
        s.timeoutText = "\(timeout.nanoseconds / 1_000_000)"
        return promise.futureResult
    }

    private var describe = ""
    private var timeoutText = ""

    private func connectDone(_ result: Int32) {
        connectTimer?.cancel()
        connectTimer = nil
        guard let promise = connectPromise else { return }
        connectPromise = nil
        if result == 0 && !isClosed {
            promise.succeed(self)
            return
        }
        let error: UpstreamFailure
        if connectTimedOut || result == -ETIMEDOUT {
            error = .connectTimeout("no connection to \(describe) within \(timeoutText) ms")
        } else if result < 0 {
            error = .connectFailed("\(describe): connect: \(String(cString: strerror(-result))) (errno \(-result))")
        } else {
            error = .connectFailed("\(describe): the connection was closed while connecting")
        }
        isClosed = true
        promise.fail(error)
    }
}

/// A listener's `max_connections` on the io_uring engine, counted across its workers. At the
/// limit every acceptor pauses (its multishot accept is cancelled) and new clients wait in the
/// kernel's accept queue, as on SwiftNIO, nginx and HAProxy; when a connection closes, accepting
/// resumes. A connection accepted in the same burst that filled the last slot is closed.
final class URingListenerGate: @unchecked Sendable {
    let max: Int
    private let lock = NIOLock()
    private var open = 0
    var acceptors: [URingAcceptor] = []

    init(max: Int) { self.max = max }

    /// Admits one more connection (or refuses: the limit is reached).
    func admit() -> Bool {
        let (admitted, nowFull) = lock.withLock { () -> (Bool, Bool) in
            if open >= max { return (false, false) }
            open += 1
            return (true, open >= max)
        }
        if nowFull { for a in acceptors { a.worker.execute { a.pause() } } }
        return admitted
    }

    /// A connection closed.
    func release() {
        let wasFull = lock.withLock { () -> Bool in
            let full = open >= max
            open -= 1
            return full
        }
        if wasFull { for a in acceptors { a.worker.execute { a.resume() } } }
    }
}

/// One worker's accepting on its own socket of a listener (the workers' sockets share the port
/// through SO_REUSEPORT, and the kernel spreads connections over them): a multishot accept stays
/// armed on it. An accepted connection gets its `ClientConnectionHandler` on this worker.
final class URingAcceptor: URingTarget, @unchecked Sendable {
    static let acceptTag: UInt64 = 4

    let fd: Int32
    unowned(unsafe) let worker: URingWorker
    let state: LoopState
    let listener: ListenerSpec
    let gate: URingListenerGate
    private var stopped = false
    private var paused = false
    private var armed = false
    /// Accepting waits out a back-off after running out of descriptors or memory
    /// (`ProxServer.acceptBackoff`).
    private var backingOff = false

    init(fd: Int32, worker: URingWorker, state: LoopState, listener: ListenerSpec, gate: URingListenerGate) {
        self.fd = fd
        self.worker = worker
        self.state = state
        self.listener = listener
        self.gate = gate
    }

    /// On the worker's thread.
    func arm() {
        guard !stopped, !paused, !armed, !backingOff else { return }
        armed = true
        prox_prep_multishot_accept(worker.sqe(), fd, Int32(SOCK_CLOEXEC.rawValue), submitting(Self.acceptTag))
    }

    /// On the worker's thread: no more connections.
    func stop() {
        stopped = true
        if armed { prox_prep_cancel(worker.sqe(), userData(Self.acceptTag), 0) }
    }

    /// On the worker's thread: the listener is full; accepting waits for `resume`.
    func pause() {
        paused = true
        if armed { prox_prep_cancel(worker.sqe(), userData(Self.acceptTag), 0) }
    }

    func resume() {
        paused = false
        arm()
    }

    override func complete(tag: UInt64, result: Int32, flags: UInt32) {
        if flags & UInt32(IORING_CQE_F_MORE) == 0 { armed = false }
        if result >= 0 {
            accepted(result)
        } else if let pause = ProxServer.acceptBackoff(errno: -result) {
            // The connection stays queued, and accepting again now would fail again now: the
            // loop would spin (and log) until a descriptor frees. It pauses instead, as nginx does.
            // (A second failure already in the completion queue changes nothing.)
            guard !backingOff else { return }
            state.logger.warning("\(ProxServer.acceptPauseMessage(listener, errno: -result, pause: pause))")
            backingOff = true
            if armed { prox_prep_cancel(worker.sqe(), userData(Self.acceptTag), 0) }
            worker.assumeIsolatedUnsafeUnchecked().scheduleTask(in: pause) { [self] in
                backingOff = false
                arm()
            }
        } else if result != -ECANCELED && result != -EINVAL && result != -EBADF {
            // An error that used up its connection (aborted before it was accepted, refused by a
            // security module): logged, and accepting goes on.
            state.logger.warning("listener \(listener.id): accept failed: \(String(cString: strerror(-result)))")
        }
        if !armed && result != -EINVAL && result != -EBADF { arm() }
    }

    private func accepted(_ fd: Int32) {
        guard !stopped, !state.draining else { Glibc.close(fd); return }
        guard gate.admit() else {
            state.logger.warning("listener \(listener.id): max_connections (\(listener.maxConnections)) reached, closing a connection accepted in the same burst")
            Glibc.close(fd)
            return
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let (ip, port) = Self.peer(fd)
        let socket = URingSocket(fd: fd, worker: worker)
        // The lifetime tests count it as SwiftNIO's channel: it must go when the connection does.
        state.track(socket, .channel)
        let gate = self.gate
        socket.onClosed = { gate.release() }
        let handler = ClientConnectionHandler(state: state, listener: listener, client: ip, clientPort: port)
        socket.delegate = handler
        handler.attach(io: socket, allocator: ByteBufferAllocator())
        socket.takeFixedSlot()
        socket.read()
    }

    /// The peer's address of an accepted socket.
    static func peer(_ fd: Int32) -> (IPAddress, Int) {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &len) == 0 }
        }
        guard ok else { return (.v4(0), 0) }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        var port = 0
        if Int32(storage.ss_family) == AF_INET {
            var a = withUnsafeBytes(of: storage) { $0.load(as: sockaddr_in.self) }
            inet_ntop(AF_INET, &a.sin_addr, &text, socklen_t(text.count))
            port = Int(UInt16(bigEndian: a.sin_port))
        } else if Int32(storage.ss_family) == AF_INET6 {
            var a = withUnsafeBytes(of: storage) { $0.load(as: sockaddr_in6.self) }
            inet_ntop(AF_INET6, &a.sin6_addr, &text, socklen_t(text.count))
            port = Int(UInt16(bigEndian: a.sin6_port))
        }
        return (IPAddress(String(cString: text)) ?? .v4(0), port)
    }
}

extension ClientConnectionHandler: URingSocketDelegate {
    func socketReceived(_ data: consuming ByteBuffer) { received(data) }
    func socketReadComplete() { readComplete() }
    func socketReadRequested() { requestRead() }
    func socketWritabilityChanged(_ writable: Bool) { writabilityChanged() }
    func socketClosed() { connectionClosed() }
}

extension UpstreamConnection: URingSocketDelegate {
    func socketReceived(_ data: consuming ByteBuffer) { received(data) }
    func socketReadComplete() { readComplete() }
    func socketReadRequested() { readMore() }
    func socketWritabilityChanged(_ writable: Bool) { writabilityChanged(writable) }
    func socketClosed() { connectionClosed() }
}
#endif
