//! The reactor's I/O table: listeners and connections in one slab, whose keys are their mio
//! tokens. Entries are looked up by typed id (`ConnId`, `ListenerId`); a readiness event's token
//! says which kind it is with `kind`.

use mio::net::TcpListener;
use slab::Slab;

use super::connection::Connection;
use super::ids::{ConnId, ListenerId, SocketId};

#[derive(Debug)]
enum Io {
    Listener { listener: TcpListener, socket: SocketId },
    Conn(Box<Connection>),
}

/// What a token stands for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Entry {
    Listener(ListenerId),
    Conn(ConnId),
}

#[derive(Debug, Default)]
pub(super) struct IoTable {
    slab: Slab<Io>,
}

impl IoTable {
    /// The token the next entry will get (to register it with mio before inserting it).
    pub fn next_token(&self) -> usize {
        self.slab.vacant_key()
    }

    /// Adds a connection; its id is the token `next_token` said.
    pub fn insert_conn(&mut self, conn: Connection) -> ConnId {
        ConnId(self.slab.insert(Io::Conn(Box::new(conn))))
    }

    /// Adds a listener for `socket`; its id is the token `next_token` said.
    pub fn insert_listener(&mut self, listener: TcpListener, socket: SocketId) -> ListenerId {
        ListenerId(self.slab.insert(Io::Listener { listener, socket }))
    }

    /// What the entry with token `token` is, if any.
    pub fn kind(&self, token: usize) -> Option<Entry> {
        match self.slab.get(token)? {
            Io::Listener { .. } => Some(Entry::Listener(ListenerId(token))),
            Io::Conn(_) => Some(Entry::Conn(ConnId(token))),
        }
    }

    pub fn conn(&self, id: ConnId) -> Option<&Connection> {
        match self.slab.get(id.0)? {
            Io::Conn(conn) => Some(conn),
            Io::Listener { .. } => None,
        }
    }

    pub fn conn_mut(&mut self, id: ConnId) -> Option<&mut Connection> {
        match self.slab.get_mut(id.0)? {
            Io::Conn(conn) => Some(conn),
            Io::Listener { .. } => None,
        }
    }

    /// A listener and the socket its connections join.
    pub fn listener(&self, id: ListenerId) -> Option<(&TcpListener, SocketId)> {
        match self.slab.get(id.0)? {
            Io::Listener { listener, socket } => Some((listener, *socket)),
            Io::Conn(_) => None,
        }
    }

    pub fn remove_conn(&mut self, id: ConnId) -> Option<Box<Connection>> {
        self.conn(id)?;
        match self.slab.remove(id.0) {
            Io::Conn(conn) => Some(conn),
            Io::Listener { .. } => None,
        }
    }

    pub fn remove_listener(&mut self, id: ListenerId) -> Option<(TcpListener, SocketId)> {
        self.listener(id)?;
        match self.slab.remove(id.0) {
            Io::Listener { listener, socket } => Some((listener, socket)),
            Io::Conn(_) => None,
        }
    }

    /// Every connection, handshaking ones included.
    pub fn conns(&self) -> impl Iterator<Item = (ConnId, &Connection)> {
        self.slab.iter().filter_map(|(key, io)| match io {
            Io::Conn(conn) => Some((ConnId(key), &**conn)),
            Io::Listener { .. } => None,
        })
    }

    /// Every listener.
    pub fn listeners(&self) -> impl Iterator<Item = ListenerId> + '_ {
        self.slab.iter().filter_map(|(key, io)| matches!(io, Io::Listener { .. }).then_some(ListenerId(key)))
    }
}
