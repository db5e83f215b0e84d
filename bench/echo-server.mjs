// The baseline of scenario 1: a bare Nest TCP microservice whose one handler returns what it got.
// Same Nest, same Node, same process settings as the service; no guard, no signing, no database.
import 'reflect-metadata';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { Controller, Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { MessagePattern, Payload, Transport } = require('@nestjs/microservices');

class EchoController {
  echo(data) {
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

const port = Number(process.env.PAI_PORT);
const app = await NestFactory.createMicroservice(EchoModule, {
  transport: Transport.TCP,
  options: { host: '127.0.0.1', port },
  logger: ['error'],
});
await app.listen();
console.log(`listening on 127.0.0.1:${port}`);
