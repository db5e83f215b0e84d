// The baseline of the ping scenarios: a bare Nest TCP microservice whose one handler returns what
// it got. Same Nest, same Node, same process settings as the service; no guard, no signing, no
// database. Node runs this file as it is (type stripping), with no loader in the process;
// decorators are applied by hand, as type stripping leaves decorator syntax alone.
import 'reflect-metadata';
import type { Server } from 'node:net';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MessagePattern, Payload, Transport } from '@nestjs/microservices';

class EchoController {
  echo(data: unknown): unknown {
    return data;
  }
}
Reflect.decorate(
  [MessagePattern('system.ping')],
  EchoController.prototype,
  'echo',
  Object.getOwnPropertyDescriptor(EchoController.prototype, 'echo'),
);
Payload()(EchoController.prototype, 'echo', 0);
Controller()(EchoController);

class EchoModule {}
Module({ controllers: [EchoController] })(EchoModule);

const app = await NestFactory.createMicroservice(EchoModule, {
  transport: Transport.TCP,
  options: { host: '127.0.0.1', port: Number(process.env.PAI_PORT ?? 0) },
  logger: ['error'],
});
await app.listen();
const address = app.unwrap<Server>().address();
// The line test/support/service-process waits for, as the service logs it.
console.log(
  `listening on 127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`,
);
