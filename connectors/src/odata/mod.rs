//! OData v4 services: the Dataverse-like emulator Ferry's REST sink is proven against (`emulator/`).
//! The sink itself comes with the issue "The Dynamics-like OData target".

pub mod emulator;
