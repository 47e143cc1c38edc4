// The client protocol's handshake and the demultiplexing of what follows it. A client's first
// message must be `hello`: its protocol version must be ours and its cluster name (when not
// empty) this node's; the answer is `hello_ok` with the node's id, the cluster size, the view and
// the leader as this node sees them. Until a connection has said hello, anything else fails the
// connection (KMB_ERR_FRAME_MALFORMED); after it, requests and queries go to their handlers and
// any other kind fails the connection. The client port (client_port.ts) has already told clients
// from replicas by the first frame.
//
// Invariant: a connection is in `helloed` only after a hello this node accepted.

import { errorCodes } from '../core/errors.js';
import { protocolVersion } from './client_protocol.js';
import type { ClientMessage, HelloOk, QueryMessage, RequestMessage } from './client_protocol.js';
import type { Connection } from './connection.js';

export interface ClientHandshakeHandlers {
  /** The hello_ok fields that change: view, leader (the rest are fixed for the node). */
  helloOk(): Omit<HelloOk, 'protocolVersion' | 'clusterName'>;
  onRequest(connection: Connection, request: RequestMessage): void;
  onQuery(connection: Connection, query: QueryMessage): void;
}

export class ClientHandshake {
  private readonly helloed = new WeakSet<Connection>();

  constructor(
    private readonly clusterName: string,
    private readonly handlers: ClientHandshakeHandlers,
  ) {}

  /** One decoded message from a client connection. */
  onMessage(connection: Connection, message: ClientMessage): void {
    if (message.kind === 'hello') {
      this.onHello(connection, message.hello.protocolVersion, message.hello.clusterName);
      return;
    }
    if (!this.helloed.has(connection)) {
      connection.fail(errorCodes.frame_malformed, 'the first message must be hello');
      return;
    }
    if (message.kind === 'request') this.handlers.onRequest(connection, message.request);
    else if (message.kind === 'query') this.handlers.onQuery(connection, message.query);
    else connection.fail(errorCodes.frame_malformed, `unexpected ${message.kind} from a client`);
  }

  private onHello(connection: Connection, version: number, clusterName: string): void {
    if (version !== protocolVersion) {
      connection.fail(
        errorCodes.protocol_version,
        `protocol version ${version} is not supported; this node speaks ${protocolVersion}`,
      );
      return;
    }
    if (clusterName !== '' && clusterName !== this.clusterName) {
      connection.fail(
        errorCodes.cluster_mismatch,
        `this node belongs to cluster "${this.clusterName}", not "${clusterName}"`,
      );
      return;
    }
    this.helloed.add(connection);
    const helloOk: HelloOk = {
      protocolVersion,
      clusterName: this.clusterName,
      ...this.handlers.helloOk(),
    };
    connection.send({ kind: 'hello_ok', helloOk });
  }
}
